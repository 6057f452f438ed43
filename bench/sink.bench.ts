// Benchmark of the sink's write path: `node bench/sink.bench.ts [--rows 50000] [--batch 5000]`.
// The same outcome rows, in the same batches, written exactly once into two fresh databases:
//   copy   the sink's own path (src/sinks/batch.ts writeBatch): COPY into a staging table, then
//          INSERT … ON CONFLICT DO NOTHING, one net balance change per account, offsets; one
//          transaction per batch.
//   naive  one INSERT … ON CONFLICT DO NOTHING per row, one balance UPDATE per money row that was
//          inserted, offsets; the same transaction per batch, so only the write method differs.
// Prints rows/s of each and the ratio, checks both databases hold the same rows and balances, and
// writes the result with the machine's facts to bench/results/sink-<date>.json.
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { formatMoney } from '../src/bank/money.ts';
import { SinkBatch, STAGING_DDL, writeBatch } from '../src/sinks/batch.ts';
import { migrate } from '../src/sinks/migrate.ts';
import type { AuditRow, OutcomeRow } from '../src/sinks/records.ts';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '50000' },
    batch: { type: 'string', default: '5000' },
    accounts: { type: 'string', default: '1000' },
    postgres: {
      type: 'string',
      default: process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    },
  },
});
const ROWS = Number(args.rows);
const BATCH_ROWS = Number(args.batch);
const ACCOUNTS = Number(args.accounts);
const GROUP = 'bench-sink';
const TOPIC = 'bench-transaction_completed';
const AT = '2026-01-02T03:04:05.678Z';

interface Result {
  method: 'copy' | 'naive';
  rows: number;
  seconds: number;
  rowsPerSecond: number;
}

/** A small deterministic PRNG (mulberry32): both methods get byte-identical data on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const accountId = (i: number) => `bench-acc-${i}`;

/** Mixed outcomes as the processor emits them: 80 % completed (deposits, withdrawals, transfers), 20 % failed. */
function buildOutcomes(count: number): OutcomeRow[] {
  const rnd = random(42);
  return Array.from({ length: count }, (_, i) => {
    const type = (['deposit', 'withdrawal', 'transfer'] as const)[Math.floor(rnd() * 3)]!;
    const [a, b] = [accountId(Math.floor(rnd() * ACCOUNTS)), accountId(Math.floor(rnd() * ACCOUNTS))];
    const amount = formatMoney(BigInt(1 + Math.floor(rnd() * 100_000)), 2);
    const failed = rnd() < 0.2;
    const fields = type === 'transfer' ? { from: a, to: b } : { accountId: a };
    const value = {
      transferId: `bench-t-${i}`,
      type,
      ...fields,
      amount,
      currency: 'EUR',
      requestedAt: AT,
      completedAt: AT,
      ...(failed ? { code: 'insufficient_funds', reason: 'not enough money' } : {}),
    };
    return {
      transferId: value.transferId,
      type,
      accountId: type === 'transfer' ? null : a,
      fromAccount: type === 'transfer' ? a : null,
      toAccount: type === 'transfer' ? b : null,
      amount,
      currency: 'EUR',
      status: failed ? 'FAILED' : 'COMPLETED',
      failureCode: failed ? 'insufficient_funds' : null,
      reason: failed ? 'not enough money' : null,
      reference: null,
      requestedAt: AT,
      completedAt: AT,
      source: { topic: TOPIC, partition: i % 12, offset: BigInt(Math.floor(i / 12)) },
      payload: JSON.stringify(value),
    };
  });
}

function openedAccounts(): AuditRow[] {
  return Array.from({ length: ACCOUNTS }, (_, i) => {
    const value = {
      event: 'account_opened',
      accountId: accountId(i),
      ownerId: `owner-${i}`,
      currency: 'EUR',
      overdraftLimit: '0.00',
      at: AT,
    };
    return {
      event: value.event,
      accountId: value.accountId,
      transferId: null,
      code: null,
      at: AT,
      ownerId: value.ownerId,
      currency: 'EUR',
      overdraftLimit: '0.00',
      source: { topic: 'bench-audit_log', partition: 0, offset: BigInt(i) },
      payload: JSON.stringify(value),
    };
  });
}

/** A fresh migrated database with every account opened (not timed). */
async function freshDatabase(label: string): Promise<{ url: string; client: pg.Client }> {
  const url = new URL(args.postgres);
  url.pathname = `/bankstream_bench_sink_${label}_${Date.now().toString(36)}`;
  await migrate({ databaseUrl: url.toString() });
  const client = new pg.Client({ connectionString: url.toString(), application_name: `bench-sink-${label}` });
  await client.connect();
  await client.query(STAGING_DDL);
  const setup = new SinkBatch();
  for (const row of openedAccounts()) {
    setup.add({ kind: 'audit', row });
    setup.advance(row.source.topic, row.source.partition, row.source.offset + 1n, Date.now());
  }
  await writeBatch(client, GROUP, setup);
  return { url: url.toString(), client };
}

function batchOf(rows: OutcomeRow[]): SinkBatch {
  const batch = new SinkBatch();
  for (const row of rows) {
    batch.add({ kind: 'outcome', row });
    batch.advance(row.source.topic, row.source.partition, row.source.offset + 1n, 0);
  }
  return batch;
}

async function timed(
  method: Result['method'],
  rows: OutcomeRow[],
  write: (batch: OutcomeRow[]) => Promise<void>,
): Promise<Result> {
  const started = process.hrtime.bigint();
  for (let start = 0; start < rows.length; start += BATCH_ROWS) await write(rows.slice(start, start + BATCH_ROWS));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { method, rows: rows.length, seconds, rowsPerSecond: rows.length / seconds };
}

const INSERT_ONE = `
INSERT INTO transactions (transfer_id, type, account_id, from_account, to_account, amount, currency, status, failure_code,
                          reason, reference, requested_at, completed_at, source_topic, source_partition, source_offset, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
ON CONFLICT DO NOTHING RETURNING 1`;

/** The naive sink: exactly once too (balances move only for inserted rows), one statement per row. */
async function writeNaive(client: pg.Client, rows: OutcomeRow[]): Promise<void> {
  await client.query('BEGIN');
  for (const r of rows) {
    const inserted = await client.query(INSERT_ONE, [
      r.transferId,
      r.type,
      r.accountId,
      r.fromAccount,
      r.toAccount,
      r.amount,
      r.currency,
      r.status,
      r.failureCode,
      r.reason,
      r.reference,
      r.requestedAt,
      r.completedAt,
      r.source.topic,
      r.source.partition,
      r.source.offset.toString(),
      r.payload,
    ]);
    if (inserted.rowCount !== 1 || r.status !== 'COMPLETED') continue;
    for (const [id, sign] of balanceMoves(r))
      await client.query('UPDATE accounts SET balance = balance + $2::numeric * $3 WHERE id = $1', [
        id,
        r.amount,
        sign,
      ]);
  }
  const offsets = batchOf(rows).nextOffsets;
  for (const o of offsets.values()) {
    await client.query(
      `INSERT INTO sink_offsets (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, $4)
       ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = GREATEST(sink_offsets.next_offset, excluded.next_offset)`,
      [GROUP, o.topic, o.partition, o.offset.toString()],
    );
  }
  await client.query('COMMIT');
}

function balanceMoves(r: OutcomeRow): Array<[string, number]> {
  if (r.type === 'deposit') return [[r.accountId!, 1]];
  if (r.type === 'withdrawal') return [[r.accountId!, -1]];
  return [
    [r.fromAccount!, -1],
    [r.toAccount!, 1],
  ];
}

/** Both databases must hold the same read model, or the comparison means nothing. */
async function fingerprint(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ n: string; balances: string; digest: string }>(`SELECT
      (SELECT count(*) FROM transactions) AS n, (SELECT sum(balance)::text FROM accounts) AS balances,
      (SELECT md5(string_agg(id || ':' || balance::text, ',' ORDER BY id)) FROM accounts) AS digest`);
  return JSON.stringify(rows[0]);
}

async function dropDatabase(url: string): Promise<void> {
  const admin = new pg.Client({ connectionString: args.postgres });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(new URL(url).pathname.slice(1))} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

async function machine(client: pg.Client): Promise<Record<string, unknown>> {
  const settings = await client.query<{ version: string; sync: string; fsync: string }>(
    `SELECT version(), current_setting('synchronous_commit') AS sync, current_setting('fsync') AS fsync`,
  );
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
    postgres: settings.rows[0]?.version,
    synchronousCommit: settings.rows[0]?.sync,
    fsync: settings.rows[0]?.fsync,
  };
}

async function main(): Promise<void> {
  const rows = buildOutcomes(ROWS);
  const copy = await freshDatabase('copy');
  const naive = await freshDatabase('naive');
  try {
    const results = [
      await timed('copy', rows, async (batch) => void (await writeBatch(copy.client, GROUP, batchOf(batch)))),
      await timed('naive', rows, (batch) => writeNaive(naive.client, batch)),
    ];
    const same = (await fingerprint(copy.client)) === (await fingerprint(naive.client));
    if (!same) throw new Error('the two sinks wrote different read models; the benchmark is void');
    const ratio = results[0]!.rowsPerSecond / results[1]!.rowsPerSecond;
    for (const r of results)
      console.log(
        `${r.method.padEnd(6)} ${Math.round(r.rowsPerSecond).toLocaleString('en').padStart(10)} rows/s  (${r.rows} rows in ${r.seconds.toFixed(2)} s)`,
      );
    console.log(
      `COPY is ${ratio.toFixed(1)}× the one-INSERT-per-row sink (batches of ${BATCH_ROWS}, ${ACCOUNTS} accounts, same read model: ${same})`,
    );
    await saveResult({
      rows: ROWS,
      batchRows: BATCH_ROWS,
      accounts: ACCOUNTS,
      results,
      ratio: Number(ratio.toFixed(2)),
      machine: await machine(copy.client),
    });
  } finally {
    await copy.client.end();
    await naive.client.end();
    await dropDatabase(copy.url);
    await dropDatabase(naive.url);
  }
}

async function saveResult(result: Record<string, unknown>): Promise<void> {
  const dir = path.join(import.meta.dirname, 'results');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `sink-${new Date().toISOString().slice(0, 10)}.json`);
  await writeFile(
    file,
    `${JSON.stringify({ benchmark: 'sink-write-path', at: new Date().toISOString(), ...result }, null, 2)}\n`,
  );
  console.log(`result written to ${path.relative(process.cwd(), file)}`);
}

await main();
