// The sink is idle (all caught up, nothing to write) when the primary dies and a replica that missed
// the last batches is promoted (before the old primary is fenced). Its connection drops while no write
// is under way and its first reconnect succeeds, so nothing fails: the sink only reconnects. It must still re-read its offsets from the NEW primary and replay the
// batches that primary lost; keeping its in-memory positions would write the next records with
// offsets past the lost ones, and those would be missing for good.
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { createLogger } from '../../../src/config/logger.ts';
import { ensureTopics } from '../../../src/ops/topics.ts';
import { migrate } from '../../../src/sinks/migrate.ts';
import { PostgresSink } from '../../../src/sinks/postgres-sink.ts';
import { waitFor } from '../../helpers/kafka.ts';
import { PrivatePostgresPair, freePortPair } from '../../helpers/pg-replica.ts';
import { deleteTopicsWithPrefix, prefixedEnv, uniquePrefix } from '../support/kafka.ts';
import { buildScenario, cents, createTestProducer, endOffsets } from './fixtures.ts';

const DATABASE = 'bankstream_idle_failover';
const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

describe('Postgres sink failover while idle', () => {
  it('should replay the batches the promoted replica lost when the connection dropped between writes', async () => {
    const pair = new PrivatePostgresPair(await freePortPair(56_800, 57_000));
    cleanups.push(() => pair.destroy());
    await pair.init();
    const prefix = uniquePrefix('pgidlefo');
    cleanups.push(() => deleteTopicsWithPrefix(prefix));
    const config = loadConfig(
      prefixedEnv(prefix, {
        PARTITIONS: '3',
        DATABASE_URL: pair.url(DATABASE),
        SINK_BATCH_ROWS_MAX: '40',
        SINK_BATCH_MS: '50',
      }),
    );
    await ensureTopics(config);
    await migrate({ databaseUrl: config.databaseUrl });
    const topics = { completed: config.topics.completed, failed: config.topics.failed, audit: config.topics.audit };
    const sink = new PostgresSink({
      config,
      logger,
      backoffMinMs: 50,
      backoffMaxMs: 500,
      sessionTimeoutMs: 6_000,
      heartbeatIntervalMs: 500,
    });
    cleanups.push(() => sink.stop());
    const producer = await createTestProducer(`${config.appId}-producer`, topics);
    cleanups.push(() => producer.close());
    const storedAt = async (node: 'primary' | 'replica') => {
      const rows = await pair.sql<{ topic: string; partition: number; next_offset: string }>(
        pair[node],
        'SELECT topic, partition, next_offset FROM sink_offsets',
        [],
        DATABASE,
      );
      return new Map(rows.map((r) => [`${r.topic}:${r.partition}`, BigInt(r.next_offset)]));
    };
    const caughtUp = async (node: 'primary' | 'replica') => {
      const [ends, stored] = await Promise.all([
        endOffsets([topics.completed, topics.failed, topics.audit]),
        storedAt(node),
      ]);
      return [...ends].every(([key, end]) => end === 0n || stored.get(key) === end);
    };

    const parts = [
      buildScenario(topics, 120, 4, 1, 'p1'),
      buildScenario(topics, 120, 4, 2, 'p2'),
      buildScenario(topics, 120, 4, 3, 'p3'),
    ];
    await sink.start();
    await producer.produce(parts[0]!.committed);
    await waitFor('part 1 on the primary', () => caughtUp('primary'), 60_000, 50);
    await pair.waitReplicaCaughtUp();

    // Part 2 reaches the primary only.
    await pair.detachReplica();
    await producer.produce(parts[1]!.committed);
    await waitFor('part 2 on the primary', () => caughtUp('primary'), 60_000, 50);
    const batchesBeforeKill = sink.status().batchesWritten;
    const connections = sink.connections();

    // Promoted first, then the old primary fenced (killed): the sink's very first reconnect finds a
    // writable server, so no failed attempt comes between to force a re-seek; only the reconnect itself can.
    await pair.promote(pair.replica);
    await pair.kill(pair.primary);
    expect(await caughtUp('replica')).toBe(false);
    // Idle: nothing new to write, the sink only notices its connection is gone and reconnects.
    await waitFor(
      'the sink to reconnect to the promoted replica',
      async () => sink.connections() > connections,
      60_000,
      20,
    );
    await producer.produce(parts[2]!.committed);
    await waitFor('everything on the promoted replica', () => caughtUp('replica'), 60_000, 50);
    expect(sink.status().batchesWritten).toBeGreaterThan(batchesBeforeKill);

    const statuses = new Map(parts.flatMap((p) => [...p.expected.statuses]));
    const balances = new Map(parts.flatMap((p) => [...p.expected.balances]));
    const transactions = await pair.sql<{ transfer_id: string; status: string }>(
      pair.replica,
      'SELECT transfer_id, status FROM transactions',
      [],
      DATABASE,
    );
    expect(transactions.length).toBe(statuses.size);
    expect(new Map(transactions.map((row) => [row.transfer_id, row.status]))).toEqual(statuses);
    const accounts = await pair.sql<{ id: string; balance: string }>(
      pair.replica,
      'SELECT id, balance::text FROM accounts',
      [],
      DATABASE,
    );
    expect(new Map(accounts.map((row) => [row.id, row.balance]))).toEqual(
      new Map([...balances].map(([id, value]) => [id, cents(value)])),
    );
  }, 240_000);
});
