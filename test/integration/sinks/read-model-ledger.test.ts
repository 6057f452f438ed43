// The read model is the ledger: every outcome record the processor emitted is one transactions row
// and one balance change, whatever its transferId; a replay of the same records changes nothing; and
// a database made before migration 0003 keeps every row when it migrates.
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/config.ts';
import { MIGRATIONS_DIR, migrate } from '../../../src/sinks/migrate.ts';
import type { SinkTopics } from '../../../src/sinks/records.ts';
import { dropDatabase, query, uniqueDatabaseUrl } from '../support/postgres.ts';
import { type Message, createTestProducer, endOffsets } from './fixtures.ts';
import { onCleanup, setUp, startSink, waitFor } from './support.ts';

const TEST_TIMEOUT_MS = 120_000;
const DAY_MS = 24 * 3600 * 1000;

async function caughtUp(config: Config, topics: SinkTopics): Promise<boolean> {
  const ends = await endOffsets([topics.completed, topics.failed, topics.audit]);
  const rows = await query<{ topic: string; partition: number; next_offset: string }>(
    config.databaseUrl,
    'SELECT topic, partition, next_offset FROM sink_offsets WHERE group_id = $1',
    [config.sinkGroupId],
  );
  const stored = new Map(rows.map((row) => [`${row.topic}:${row.partition}`, BigInt(row.next_offset)]));
  return [...ends].every(([key, end]) => end === 0n || stored.get(key) === end);
}

const at = (ms: number) => new Date(ms).toISOString();

/** What the processor emits when one transferId is decided four times: two accounts, and one of them again after the retention. */
function reuseOutcomes(topics: SinkTopics): Message[] {
  const first = Date.parse('2026-01-01T00:00:00.000Z');
  const later = first + 8 * DAY_MS;
  const opened = (accountId: string) => ({
    topic: topics.audit,
    key: accountId,
    value: JSON.stringify({
      event: 'account_opened',
      accountId,
      ownerId: `owner-${accountId}`,
      currency: 'EUR',
      overdraftLimit: '0.00',
      at: at(first),
    }),
  });
  const deposit = (accountId: string, amount: string, ms: number) => ({
    topic: topics.completed,
    key: 'reused-1',
    value: JSON.stringify({
      transferId: 'reused-1',
      type: 'deposit',
      accountId,
      amount,
      currency: 'EUR',
      requestedAt: at(ms),
      completedAt: at(ms),
    }),
  });
  const transfer = {
    topic: topics.completed,
    key: 'reused-1',
    value: JSON.stringify({
      transferId: 'reused-1',
      type: 'transfer',
      from: 'acc-c',
      to: 'acc-a',
      amount: '2.50',
      currency: 'EUR',
      requestedAt: at(first),
      completedAt: at(first),
    }),
  };
  return [
    opened('acc-a'),
    opened('acc-b'),
    opened('acc-c'),
    deposit('acc-a', '10.00', first),
    deposit('acc-b', '20.00', first),
    deposit('acc-c', '5.00', first - 1000),
    transfer,
    // The same command on acc-a again, 8 days later: the dedup entry had expired, the ledger applied it.
    deposit('acc-a', '10.00', later),
  ];
}

describe('the read model is the ledger', () => {
  it(
    'should keep every decision and its balance change when one transferId is decided on several accounts and again after the retention',
    async () => {
      const { config, topics } = await setUp('ledgerreuse');
      const producer = await createTestProducer(`${config.appId}-producer`, topics);
      onCleanup(() => producer.close());
      // One record per transaction: the outcomes land on the partitions of their key like the processor's would.
      await producer.produce(reuseOutcomes(topics), { perTransaction: 2, abortEvery: 2 });

      const sink = startSink(config);
      await sink.start();
      await waitFor('the sink to catch up', () => caughtUp(config, topics));

      const rows = await query<{ acted_account: string; type: string; amount: string; completed_at: Date }>(
        config.databaseUrl,
        `SELECT acted_account, type, amount::text, completed_at FROM transactions WHERE transfer_id = 'reused-1' ORDER BY acted_account, completed_at`,
      );
      expect(rows.map((r) => [r.acted_account, r.type, r.amount])).toEqual([
        ['acc-a', 'deposit', '10.00'],
        ['acc-a', 'deposit', '10.00'],
        ['acc-b', 'deposit', '20.00'],
        ['acc-c', 'deposit', '5.00'],
        ['acc-c', 'transfer', '2.50'],
      ]);
      const balances = async () =>
        new Map(
          (
            await query<{ id: string; balance: string }>(config.databaseUrl, 'SELECT id, balance::text FROM accounts')
          ).map((r) => [r.id, r.balance]),
        );
      const expected = new Map([
        ['acc-a', '22.50'],
        ['acc-b', '20.00'],
        ['acc-c', '2.50'],
      ]);
      expect(await balances()).toEqual(expected);
      expect(sink.status()).toMatchObject({ rejectsWritten: 0, unresolvedRejects: { count: 0, first: null } });

      // A crash replay: the same records offered again change nothing (their positions are already stored).
      await sink.stop();
      await query(config.databaseUrl, 'UPDATE sink_offsets SET next_offset = 0');
      const replay = startSink(config);
      await replay.start();
      await waitFor('the replaying sink to catch up', () => caughtUp(config, topics));
      await waitFor('the replay to be written', () => replay.status().batchesWritten > 0);
      expect(
        Number((await query<{ n: string }>(config.databaseUrl, `SELECT count(*) AS n FROM transactions`))[0]?.n),
      ).toBe(5);
      expect(await balances()).toEqual(expected);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should keep every row and accept a reused transferId when a database made before migration 0003 migrates',
    async () => {
      const databaseUrl = uniqueDatabaseUrl('ledgermigrate');
      const oldDir = await mkdtemp(path.join(tmpdir(), 'bankstream-migrations-'));
      onCleanup(
        () => dropDatabase(databaseUrl),
        () => rm(oldDir, { recursive: true, force: true }),
      );
      for (const file of ['0001_core_schema.sql', '0002_sink_state.sql'])
        await cp(path.join(MIGRATIONS_DIR, file), path.join(oldDir, file));
      await migrate({ databaseUrl, migrationsDir: oldDir });
      const insert = (transferId: string, offset: number, accountId: string, completedAt: string) =>
        query(
          databaseUrl,
          `INSERT INTO transactions (transfer_id, type, account_id, amount, currency, status, requested_at, completed_at, source_topic, source_partition, source_offset, payload)
       VALUES ($1, 'deposit', $2, 1.00, 'EUR', 'COMPLETED', $3, $3, 'completed', 0, $4, '{}')`,
          [transferId, accountId, completedAt, offset],
        );
      await insert('old-1', 0, 'acc-a', '2026-01-01T00:00:00Z');
      await insert('old-2', 1, 'acc-b', '2026-01-01T00:00:00Z');
      await query(
        databaseUrl,
        `INSERT INTO sink_rejects (source_topic, source_partition, source_offset, error) VALUES ('completed', 0, 2, 'old reject')`,
      );

      const result = await migrate({ databaseUrl });

      expect(result.applied.map((m) => m.file)).toContain('0003_one_row_per_decision.sql');
      const rows = await query<{ id: string; transfer_id: string; acted_account: string }>(
        databaseUrl,
        'SELECT id::text, transfer_id, acted_account FROM transactions ORDER BY id',
      );
      expect(rows.map((r) => [r.transfer_id, r.acted_account])).toEqual([
        ['old-1', 'acc-a'],
        ['old-2', 'acc-b'],
      ]);
      expect(new Set(rows.map((r) => r.id)).size).toBe(2);
      // The same transferId on another account is a row of its own now; the same position still is not.
      await insert('old-1', 3, 'acc-b', '2026-01-02T00:00:00Z');
      await expect(insert('old-1', 3, 'acc-b', '2026-01-02T00:00:00Z')).rejects.toThrow(/transactions_source_key/);
      expect(await query(databaseUrl, `SELECT error, resolved_at FROM sink_rejects`)).toEqual([
        { error: 'old reject', resolved_at: null },
      ]);
    },
    TEST_TIMEOUT_MS,
  );
});
