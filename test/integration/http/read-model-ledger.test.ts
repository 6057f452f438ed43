// The read model is the ledger, end to end on the real broker and Postgres: one transferId used on
// several accounts is several decisions, each one stored with its balance change, and the API's
// transfer lookup follows the per-account scope; a record the sink cannot store raises an alarm
// (metric, readiness, reconcile) until an operator resolves it.
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { formatReport } from '../../../src/ops/reconcile/report.ts';
import { reconcile } from '../../../src/ops/reconcile/reconcile.ts';
import { waitFor } from '../../helpers/kafka.ts';
import { query } from '../support/postgres.ts';
import { adminToken } from '../support/tokens.ts';
import { DEV_SECRET, type Stack, call, createStack, login, waitReady } from './stack.ts';

const PARTITIONS = 4;
const TEST_TIMEOUT_MS = 180_000;

let stack: Stack;
let url: string;
let teller: string;
let admin: string;

type Json = Record<string, unknown>;

async function openAccount(accountId: string): Promise<void> {
  const response = await call(url, 'POST', '/v1/accounts?wait=10000', {
    token: teller,
    body: { accountId, ownerId: `owner-${accountId}`, currency: 'EUR' },
  });
  expect(response.status, response.text).toBe(201);
}

async function money(route: string, token: string, body: Json): Promise<Json> {
  const response = await call(url, 'POST', `${route}?wait=10000`, { token, body: { currency: 'EUR', ...body } });
  expect(response.status, response.text).toBe(200);
  return response.body as Json;
}

/** Account ids `${prefix}-<n>` whose partitions satisfy `accept` (given the ones chosen so far). */
function pickAccounts(
  prefix: string,
  count: number,
  accept: (partition: number, chosen: number[]) => boolean,
): string[] {
  const ids: string[] = [];
  const partitions: number[] = [];
  for (let i = 0; ids.length < count && i < 10_000; i++) {
    const id = `${prefix}-${i}`;
    const partition = partitionForKey(id, PARTITIONS);
    if (accept(partition, partitions)) {
      ids.push(id);
      partitions.push(partition);
    }
  }
  return ids;
}

async function apiBalance(accountId: string): Promise<string> {
  const response = await call(url, 'GET', `/v1/accounts/${accountId}`, { token: teller });
  expect(response.status, response.text).toBe(200);
  return (response.body as { balance: string }).balance;
}

async function postgresBalances(ids: string[]): Promise<Map<string, string>> {
  const rows = await query<{ id: string; balance: string }>(
    stack.databaseUrl,
    'SELECT id, balance::text FROM accounts WHERE id = ANY($1::text[])',
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r.balance]));
}

/** A command straight onto the input topic, under the key given (the API always keys by the account). */
async function produceRaw(key: string, value: string): Promise<void> {
  const config = loadConfig(stack.env);
  const kafka = new Kafka({ clientId: 'raw-command', brokers: config.kafkaBrokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    await producer.send({ topic: config.topics.input, acks: -1, messages: [{ key, value }] });
  } finally {
    await producer.disconnect();
  }
}

beforeAll(async () => {
  stack = await createStack('ledgerapi', { PARTITIONS: String(PARTITIONS) });
  url = (await stack.start({ INSTANCE_ID: 'ledger-0' })).http!.url;
  await Promise.all([stack.addUser('teller1', 'teller'), stack.addUser('admin1', 'admin')]);
  await waitReady(url);
  [teller, admin] = [await login(url, 'teller1'), await login(url, 'admin1')];
}, TEST_TIMEOUT_MS);

afterAll(async () => {
  await stack?.cleanup();
});

describe('the read model is the ledger', () => {
  it(
    'should store every decision and balance change when one transferId is used on accounts of different partitions and of one partition',
    async () => {
      // a and a2 share a partition, b and d live in others.
      const [a, a2] = pickAccounts('lg-same', 2, (p, chosen) => chosen.length === 0 || p === chosen[0]) as [
        string,
        string,
      ];
      const [b, d] = pickAccounts(
        'lg-other',
        2,
        (p, chosen) => p !== partitionForKey(a, PARTITIONS) && !chosen.includes(p),
      ) as [string, string];
      const accounts = [a, a2, b, d];
      for (const id of accounts) await openAccount(id);

      const decided = [
        await money('/v1/deposits', teller, { transferId: 'L-1', accountId: a, amount: '100.00' }),
        await money('/v1/deposits', teller, { transferId: 'L-1', accountId: b, amount: '40.00' }),
        await money('/v1/deposits', teller, { transferId: 'L-1', accountId: a2, amount: '7.00' }),
        // A deposit, then its transferId reused by a transfer from another account.
        await money('/v1/deposits', teller, { transferId: 'L-2', accountId: a, amount: '10.00' }),
        await money('/v1/transfers', admin, { transferId: 'L-2', from: b, to: d, amount: '5.00' }),
      ];
      expect(decided.map((o) => o['status'])).toEqual([
        'completed',
        'completed',
        'completed',
        'completed',
        'completed',
      ]);
      // A command sent under the wrong key (refused, deduplicated under that key), then correctly on its own.
      await produceRaw(
        a,
        JSON.stringify({ type: 'deposit', transferId: 'L-3', accountId: b, amount: '3.00', currency: 'EUR' }),
      );
      expect((await money('/v1/deposits', teller, { transferId: 'L-3', accountId: b, amount: '3.00' }))['status']).toBe(
        'completed',
      );

      const expected = new Map([
        [a, '110.00'],
        [a2, '7.00'],
        [b, '38.00'],
        [d, '5.00'],
      ]);
      const stores = new Map(
        await Promise.all(accounts.map(async (id) => [id, await apiBalance(id)] as [string, string])),
      );
      expect(stores).toEqual(expected);
      await waitFor(
        'Postgres to hold the same balances as the stores',
        async () => {
          const balances = await postgresBalances(accounts);
          return [...expected].every(([id, balance]) => balances.get(id) === balance) || undefined;
        },
        30_000,
        100,
      );
      const rows = await query<{ acted_account: string }>(
        stack.databaseUrl,
        `SELECT acted_account FROM transactions WHERE transfer_id = 'L-1' ORDER BY acted_account`,
      );
      expect(rows.map((r) => r.acted_account)).toEqual([a, a2, b].sort());

      // The transfer resource follows the scope: ambiguous without ?account=, exact with it.
      const ambiguous = await call(url, 'GET', '/v1/transfers/L-1', { token: admin });
      expect(ambiguous.status, ambiguous.text).toBe(409);
      expect(ambiguous.body).toMatchObject({ code: 'transfer_id_ambiguous', transferId: 'L-1' });
      const choices = (ambiguous.body as { decisions: Array<{ account: string; location: string }> }).decisions;
      expect(choices.map((c) => c.account).sort()).toEqual([a, a2, b].sort());
      const ofB = await call(url, 'GET', choices.find((c) => c.account === b)!.location, { token: admin });
      expect(ofB.body).toMatchObject({
        transferId: 'L-1',
        type: 'deposit',
        accountId: b,
        amount: '40.00',
        status: 'completed',
      });
      const transfer = await call(url, 'GET', `/v1/transfers/L-2?account=${b}`, { token: admin });
      expect(transfer.body).toMatchObject({
        transferId: 'L-2',
        type: 'transfer',
        from: b,
        to: d,
        amount: '5.00',
        status: 'completed',
      });
      const history = await call(url, 'GET', `/v1/accounts/${b}/transfers`, { token: admin });
      const items = (history.body as { items: Json[] }).items.filter((i) => i['status'] === 'completed');
      expect(items.map((i) => [i['transferId'], i['type']])).toEqual([
        ['L-3', 'deposit'],
        ['L-2', 'transfer'],
        ['L-1', 'deposit'],
      ]);

      // History cursors carry a row id now; a cursor of an earlier version ([at, transferId]) still pages on.
      const first = await call(url, 'GET', `/v1/accounts/${a}/transfers?limit=1`, { token: admin });
      const page = first.body as { items: Json[]; nextCursor: string };
      expect(page.items.map((i) => i['transferId'])).toEqual(['L-2']);
      const [cursorAt, cursorId] = JSON.parse(Buffer.from(page.nextCursor, 'base64url').toString('utf8')) as [
        string,
        string,
        string,
      ];
      const legacyCursor = Buffer.from(JSON.stringify([cursorAt, cursorId])).toString('base64url');
      for (const cursor of [page.nextCursor, legacyCursor]) {
        const next = await call(url, 'GET', `/v1/accounts/${a}/transfers?limit=10&cursor=${cursor}`, { token: admin });
        expect(
          (next.body as { items: Json[] }).items.map((i) => [i['transferId'], i['amount']]),
          next.text,
        ).toEqual([['L-1', '100.00']]);
      }

      const report = await reconcile(loadConfig(stack.env), { quietTimeoutMs: 60_000 });
      expect(report.differences, formatReport(report)).toEqual([]);
      expect(report.ok).toBe(true);
      // Both answers of L-3 are kept (the system is quiet now): the refusal under the wrong key (README-BANK: key ≠ account is malformed) and the deposit.
      const l3 = await query<{ status: string; failure_code: string | null }>(
        stack.databaseUrl,
        `SELECT status, failure_code FROM transactions WHERE transfer_id = 'L-3' ORDER BY status`,
      );
      expect(l3).toEqual([
        { status: 'COMPLETED', failure_code: null },
        { status: 'FAILED', failure_code: 'malformed' },
      ]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should raise the alarm in metrics, readiness and reconcile when an outcome cannot be stored, until an operator resolves it',
    async () => {
      const config = loadConfig(stack.env);
      const kafka = new Kafka({
        clientId: 'hand-made-outcome',
        brokers: config.kafkaBrokers,
        logLevel: logLevel.NOTHING,
      });
      const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
      await producer.connect();
      const at = new Date().toISOString();
      // A NUL in reference: Postgres text and jsonb cannot hold it. The strict edge never lets one through;
      // this record is written by hand, as a bug or a foreign writer would.
      const value = JSON.stringify({
        transferId: 'poison-ref',
        type: 'deposit',
        accountId: 'nobody',
        amount: '1.00',
        currency: 'EUR',
        reference: 'a\u0000b',
        requestedAt: at,
        completedAt: at,
      });
      const [sent] = await producer.send({
        topic: config.topics.completed,
        acks: -1,
        messages: [{ key: 'poison-ref', value }],
      });
      await producer.disconnect();
      const position = `${config.topics.completed}-${sent!.partition}@${sent!.baseOffset}`;

      const notReady = await waitFor(
        'readiness to report the reject',
        async () => {
          const ready = await call(url, 'GET', '/readyz', { token: await adminToken(DEV_SECRET) });
          return ready.status === 503 ? ready : undefined;
        },
        30_000,
        200,
      );
      const reasons = (notReady.body as { ready: boolean; reasons: string[] }).reasons;
      expect(notReady.body).toMatchObject({ ready: false });
      expect(reasons).toEqual([expect.stringContaining(`sink_rejects: 1 record(s)`)]);
      expect(reasons[0]).toContain(position);
      expect(reasons[0]).toContain('reference holds a NUL character');
      const metrics = await call(url, 'GET', '/metrics', { token: await adminToken(DEV_SECRET) });
      expect(metrics.text).toMatch(/^bankstream_sink_unresolved_rejects\{[^}]*\} 1$/m);
      expect(metrics.text).toMatch(/^bankstream_sink_rejects_total\{[^}]*\} 1$/m);

      const report = await reconcile(config, { quietTimeoutMs: 60_000 });
      expect(report.ok).toBe(false);
      expect(report.counts.sinkRejects).toBe(1);
      const rejects = report.differences.filter((difference) => difference.kind === 'sink_reject');
      expect(rejects).toEqual([
        expect.objectContaining({ transferId: 'poison-ref', message: expect.stringContaining(position) }),
      ]);
      expect(formatReport(report)).toMatch(/sink rejects +1 unresolved +DIFFERS/);

      await query(
        stack.databaseUrl,
        `UPDATE sink_rejects SET resolved_at = now(), resolution = 'hand-made test record, no money moved'`,
      );
      await waitFor(
        'readiness to come back once resolved',
        async () =>
          (await call(url, 'GET', '/readyz', { token: await adminToken(DEV_SECRET) })).status === 200 || undefined,
        45_000,
        500,
      );
      expect((await call(url, 'GET', '/metrics', { token: await adminToken(DEV_SECRET) })).text).toMatch(
        /^bankstream_sink_unresolved_rejects\{[^}]*\} 0$/m,
      );
    },
    TEST_TIMEOUT_MS,
  );
});
