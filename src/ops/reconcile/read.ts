// Reading for `bankstream reconcile`: Kafka topics in explicit ranges through a consumer that never joins a
// group (src/kafka's reader: the Java read_committed rule, unlike the client's own filter), Postgres in one
// REPEATABLE READ snapshot, and optionally every account through the HTTP API.
import { type Consumer, ListOffsetTimestamps } from '@platformatic/kafka';
import type pg from 'pg';
import type { Config } from '../../config/config.ts';
import { changelogTopic } from '../../topology/changelog.ts';
import { type Fetcher, type FetchedRecord, tpKey } from '../../kafka/fetcher.ts';
import { createReader } from '../../kafka/reader.ts';
import { kafkaConnectionOptions } from '../../kafka/security.ts';
import { storableText } from '../../sinks/records.ts';
import {
  type ApiView,
  type Offsets,
  type PostgresView,
  type Range,
  type ReconcileOptions,
  positionKey,
} from './model.ts';
import { holdId } from './holds.ts';

const FETCH_IDLE_ROUNDS_MAX = 200;

export class TopicReader {
  readonly consumer: Consumer;
  readonly #fetcher: Fetcher;
  readonly #partitions = new Map<string, number>();

  constructor(config: Config) {
    // groupId = the application id, so fetchStableOffsets reads the processor's committed offsets.
    // The consumer never joins: closing it sends no LeaveGroup and disturbs no member.
    const reader = createReader({
      clientId: `${config.appId}-reconcile`,
      groupId: config.appId,
      bootstrapBrokers: config.kafkaBrokers,
      security: kafkaConnectionOptions(config.kafkaSecurity, config.kafkaBrokers),
      fetch: { maxWaitMs: 100, minBytes: 1, maxBytes: 16 * 1024 * 1024, partitionMaxBytes: 4 * 1024 * 1024 },
    });
    this.consumer = reader.consumer;
    this.#fetcher = reader.fetcher;
  }

  async partitionsOf(topics: string[]): Promise<Map<string, number>> {
    const missing = topics.filter((t) => !this.#partitions.has(t));
    if (missing.length > 0) {
      const metadata = await this.consumer.metadata({ topics: missing }).catch((error: unknown) => {
        throw new Error(
          `cannot read the metadata of ${missing.join(', ')} (run "bankstream topics create" if they are missing)`,
          { cause: error },
        );
      });
      for (const topic of missing) {
        const count = metadata.topics.get(topic)?.partitionsCount;
        if (count === undefined) throw new Error(`topic ${topic} does not exist (run "bankstream topics create")`);
        this.#partitions.set(topic, count);
      }
    }
    return new Map(topics.map((t) => [t, this.#partitions.get(t) ?? 0]));
  }

  /** Offsets per "topic\0partition": EARLIEST, the high watermark, or the last stable offset. */
  async offsets(topics: string[], which: 'earliest' | 'high' | 'stable'): Promise<Offsets> {
    await this.partitionsOf(topics);
    const listed = await this.consumer.listOffsets({
      topics,
      timestamp: which === 'earliest' ? ListOffsetTimestamps.EARLIEST : ListOffsetTimestamps.LATEST,
      isolationLevel: which === 'stable' ? 1 : 0,
    });
    const out: Offsets = new Map();
    for (const [topic, list] of listed) list.forEach((offset, partition) => out.set(tpKey(topic, partition), offset));
    return out;
  }

  /** Calls `onRecord` for every committed record of the ranges, in offset order per partition. */
  async read(ranges: Range[], onRecord: (record: FetchedRecord) => void): Promise<void> {
    let idleRounds = 0;
    for (;;) {
      const active = ranges.filter((r) => r.offset < r.end);
      if (active.length === 0) return;
      const byKey = new Map(active.map((r) => [tpKey(r.topic, r.partition), r]));
      let progressed = false;
      for (const part of await this.#fetcher.fetch(active)) {
        const range = byKey.get(tpKey(part.topic, part.partition));
        if (!range || part.nextOffset <= range.offset) continue;
        for (const record of part.records) if (record.offset < range.end) onRecord(record);
        range.offset = part.nextOffset;
        progressed = true;
      }
      // A bound on the loop: a partition that stops advancing (a broker problem) fails the run.
      idleRounds = progressed ? 0 : idleRounds + 1;
      if (idleRounds > FETCH_IDLE_ROUNDS_MAX)
        throw new Error(`reading ${active.map((r) => `${r.topic}-${r.partition}`).join(', ')} made no progress`);
    }
  }

  /** Every committed record of the topics, from the log start to the last stable offset. */
  async readAll(topics: string[], onRecord: (record: FetchedRecord) => void): Promise<void> {
    const [start, end] = [await this.offsets(topics, 'earliest'), await this.offsets(topics, 'stable')];
    await this.read(rangesBetween(start, end, start), onRecord);
  }

  async close(): Promise<void> {
    await this.consumer.close(true).catch(() => undefined);
  }
}

/** Ranges from `from` (or the log start) to `end`, for every partition listed in `end`. */
export function rangesBetween(from: Offsets, end: Offsets, logStart: Offsets): Range[] {
  return [...end].map(([key, stop]) => {
    const [topic = '', partition = '0'] = key.split('\u0000');
    const start = maxBigint(from.get(key) ?? 0n, logStart.get(key) ?? 0n);
    return { topic, partition: Number(partition), offset: start, end: stop };
  });
}

/** One REPEATABLE READ snapshot, so the queries see the same committed state. */
export async function readPostgres(db: pg.Client, sinkTopics: string[]): Promise<PostgresView> {
  await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    return await queryPostgres(db, sinkTopics);
  } finally {
    await db.query('COMMIT');
  }
}

async function queryPostgres(db: pg.Client, sinkTopics: string[]): Promise<PostgresView> {
  const accounts = await db.query<{ id: string; currency: string | null; status: string; balance: string }>(
    'SELECT id, currency, status, balance::text AS balance FROM accounts',
  );
  const transactions = await db.query<{
    transfer_id: string;
    status: string;
    source_topic: string;
    source_partition: number;
    source_offset: string;
  }>('SELECT transfer_id, status, source_topic, source_partition, source_offset::text FROM transactions');
  const conflicts = await db.query<{ n: string }>('SELECT count(*) AS n FROM transfer_conflicts');
  const holds = await db.query<{ from_account: string; hold_id: string; status: string; posted_amount: string | null }>(
    'SELECT from_account, hold_id, status, posted_amount::text AS posted_amount FROM holds',
  );
  const rejects = await db.query<{
    source_topic: string;
    source_partition: number;
    source_offset: string;
    record_key: Buffer | null;
    error: string;
    rejected_at: Date;
  }>(
    `SELECT source_topic, source_partition, source_offset::text, record_key, error, rejected_at FROM sink_rejects
      WHERE resolved_at IS NULL AND source_topic = ANY($1::text[]) ORDER BY rejected_at, id`,
    [sinkTopics],
  );
  return {
    accounts: new Map(
      accounts.rows.map((row) => [row.id, { currency: row.currency, status: row.status, balance: row.balance }]),
    ),
    transactions: new Map(
      transactions.rows.map((row) => [
        positionKey(row.source_topic, row.source_partition, row.source_offset),
        { transferId: row.transfer_id, status: row.status },
      ]),
    ),
    conflicts: Number(conflicts.rows[0]?.n ?? 0),
    holds: new Map(
      holds.rows.map((row) => [
        holdId(row.from_account, row.hold_id),
        { status: row.status, postedAmount: row.posted_amount },
      ]),
    ),
    rejects: rejects.rows.map((row) => ({
      where: `${row.source_topic}-${row.source_partition}@${row.source_offset}`,
      key: row.record_key === null ? null : storableText(row.record_key.toString('utf8')).slice(0, 120),
      error: row.error,
      rejectedAt: row.rejected_at.toISOString(),
    })),
  };
}

const API_TIMEOUT_MS = 5_000;

const API_ATTEMPTS_MAX = 5;

/** Each account through GET /v1/accounts/:id, a bounded number at a time. */
export async function readApi(options: ReconcileOptions, ids: string[]): Promise<ApiView> {
  const view: ApiView = new Map();
  const queue = [...ids];
  const worker = async () => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) view.set(id, await readApiAccount(options, id));
  };
  await Promise.all(Array.from({ length: Math.max(1, options.apiConcurrency ?? 8) }, worker));
  return view;
}

async function readApiAccount(
  options: ReconcileOptions,
  id: string,
): Promise<{ balance: string | null; error?: string }> {
  const url = new URL(
    `v1/accounts/${encodeURIComponent(id)}`,
    options.apiUrl!.endsWith('/') ? options.apiUrl : `${options.apiUrl}/`,
  );
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.apiToken) headers.authorization = `Bearer ${options.apiToken}`;
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await fetch(url, { headers, signal: AbortSignal.timeout(API_TIMEOUT_MS) });
      // 503 while a partition restores or moves: wait as told (bounded) and ask again.
      if (response.status === 503 && attempt < API_ATTEMPTS_MAX) {
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(Number(response.headers.get('retry-after') ?? 1) * 1000, 2_000)),
        );
        continue;
      }
      if (response.status === 404) return { balance: null };
      if (!response.ok) return { balance: null, error: `HTTP ${response.status}` };
      const body = (await response.json()) as { balance?: unknown };
      return typeof body.balance === 'string'
        ? { balance: body.balance }
        : { balance: null, error: 'no "balance" string in the answer' };
    } catch (error) {
      if (attempt >= API_ATTEMPTS_MAX)
        return { balance: null, error: error instanceof Error ? error.message : String(error) };
    }
  }
}

export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function maxBigint(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** The changelogs a restoring task reads; `<appId>-<store>-changelog`, as the engine names them. */
export function changelogs(config: Config): { balances: string; accounts: string; transfers: string; holds: string } {
  return {
    balances: changelogTopic(config.appId, 'balances'),
    accounts: changelogTopic(config.appId, 'accounts'),
    transfers: changelogTopic(config.appId, 'transfers'),
    holds: changelogTopic(config.appId, 'holds'),
  };
}
