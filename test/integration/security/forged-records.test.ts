// Internal records are authenticated (src/kafka/record-mac.ts), on the real broker and PostgreSQL, with
// no ACLs (as `bankstream dev` runs): a forged credit leg, a real leg replayed with an edited amount, a
// verbatim copy of a real settle leg or of a real credit leg, and a forged changelog record each move no money — the stores, PostgreSQL and `reconcile` agree — and each is
// reported (a DLQ entry with the reason, the engine's counter and readiness; a restore error naming the
// record's topic, partition and offset; a reconcile finding).
import { rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { Instance } from '../../../src/app/instance.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import type { FetchedRecord } from '../../../src/kafka/fetcher.ts';
import { internalRecordsDegradedReasons } from '../../../src/streams/status.ts';
import { MAC_HEADER } from '../../../src/kafka/record-mac.ts';
import { formatReport } from '../../../src/ops/reconcile/report.ts';
import { reconcile } from '../../../src/ops/reconcile/reconcile.ts';
import { produce, readCommitted, waitFor } from '../../helpers/kafka.ts';
import { query } from '../support/postgres.ts';
import { PARTITIONS, type Pipeline, sendCommands, setUpPipeline, startProcessor } from '../reconcile/pipeline.ts';

const TEST_TIMEOUT_MS = 240_000;
const WAIT_MS = 60_000;

const json = (value: Record<string, unknown>) => Buffer.from(JSON.stringify(value), 'utf8');

/** Two accounts on different partitions, so that a transfer between them travels as a credit leg. */
function accountsOnTwoPartitions(prefix: string): [string, string] {
  const a = `${prefix}-a`;
  for (let i = 0; ; i++) {
    const b = `${prefix}-b${i}`;
    if (partitionForKey(b, PARTITIONS) !== partitionForKey(a, PARTITIONS)) return [a, b];
  }
}

function headerMap(headers: Record<string, Buffer>): Map<Buffer, Buffer> {
  return new Map(Object.entries(headers).map(([name, value]) => [Buffer.from(name, 'utf8'), value]));
}

async function storeBalance(instance: Instance, account: string): Promise<string | undefined> {
  const task = instance.streams.task(partitionForKey(account, PARTITIONS));
  const row = (await task?.stores.get('balances')?.readCommitted(account)) as
    | { balance: string; inFlight: string }
    | undefined;
  return row ? `${row.balance}/${row.inFlight}` : undefined;
}

async function postgresBalances(pipeline: Pipeline, accounts: string[]): Promise<Record<string, string>> {
  const rows = await query<{ id: string; balance: string }>(
    pipeline.config.databaseUrl,
    'SELECT id, balance::text AS balance FROM accounts WHERE id = ANY($1)',
    [accounts],
  );
  return Object.fromEntries(rows.map((r) => [r.id, r.balance]));
}

async function deadLetters(pipeline: Pipeline): Promise<FetchedRecord[]> {
  return readCommitted(pipeline.config.topics.dlq, PARTITIONS);
}

describe('authenticated internal records', () => {
  it(
    'should apply no forged or edited leg and no forged changelog record, and report each',
    async () => {
      const pipeline = await setUpPipeline('forged');
      const { config } = pipeline;
      const [a, b] = accountsOnTwoPartitions(config.appId);
      let instance: Instance | undefined;
      try {
        instance = await startProcessor(config, true);
        await sendCommands(config, [
          { key: a, value: json({ type: 'open_account', accountId: a, ownerId: 'u-a', currency: 'EUR' }) },
          { key: b, value: json({ type: 'open_account', accountId: b, ownerId: 'u-b', currency: 'EUR' }) },
          {
            key: a,
            value: json({ type: 'deposit', transferId: 'd-1', accountId: a, amount: '100.00', currency: 'EUR' }),
          },
          {
            key: a,
            value: json({ type: 'transfer', transferId: 't-1', from: a, to: b, amount: '30.00', currency: 'EUR' }),
          },
        ]);
        const settled = await reconcile(config, { quietTimeoutMs: WAIT_MS });
        expect(settled.differences, formatReport(settled)).toEqual([]);
        expect(await postgresBalances(pipeline, [a, b])).toEqual({ [a]: '70.00', [b]: '30.00' });

        // The real credit leg of t-1, as anyone who can read the credits topic sees it: signed.
        const legs = await readCommitted(config.topics.credits, PARTITIONS);
        const real = legs.find((r) => r.value?.toString('utf8').includes('"leg":"credit"'))!;
        expect(real.headers[MAC_HEADER]).toBeDefined();
        const creditPartition = partitionForKey(b, PARTITIONS);
        // 1. A forged credit leg, exactly shaped like a real one, with no MAC.
        const forged = json({
          leg: 'credit',
          transferId: 'x-forged',
          type: 'transfer',
          from: 'nobody',
          to: b,
          amount: '500.00',
          currency: 'EUR',
          requestedAt: '2026-01-01T00:00:00.000Z',
        });
        // 2. The real leg replayed as another transfer with another amount, keeping its MAC headers.
        const edited = Buffer.from(
          real.value!.toString('utf8').replace('"t-1"', '"t-replayed"').replace('"30.00"', '"500.00"'),
          'utf8',
        );
        await produce([
          { topic: config.topics.credits, partition: creditPartition, key: Buffer.from(b), value: forged },
          {
            topic: config.topics.credits,
            partition: creditPartition,
            key: Buffer.from(b),
            value: edited,
            headers: headerMap(real.headers),
          },
        ]);
        const letters = await waitFor(
          'two dead letters',
          async () => {
            const all = (await deadLetters(pipeline)).filter(
              (r) => r.headers['bankstream.source.topic']?.toString() === config.topics.credits,
            );
            return all.length >= 2 ? all : undefined;
          },
          WAIT_MS,
        );
        // Both on the partition of b, in the order written.
        expect(letters.map((r) => r.value)).toEqual([forged, edited]);
        expect(letters.map((r) => r.headers['bankstream.error']!.toString())).toEqual([
          expect.stringMatching(/does not verify \(missing_mac\)/),
          expect.stringMatching(/does not verify \(bad_mac\)/),
        ]);
        expect(letters[0]!.headers['bankstream.source.partition']!.toString()).toBe(String(creditPartition));
        const status = instance.streams.status().internalRecords;
        expect(status.rejectedRecords).toBe(2);
        expect(internalRecordsDegradedReasons(status)[0]).toMatch(/2 internal record\(s\) refused/);
        expect(
          await instance.metrics.registry.getSingleMetricAsString('bankstream_internal_records_rejected_total'),
        ).toMatch(/bankstream_internal_records_rejected_total\{[^}]*\} 2/);

        // 3. Verbatim copies of the real settle and credit legs (MACs intact, so they verify). The settle
        // leg: the from task's in-flight entry is already final. The credit leg: the to task's credited mark
        // for (a, t-1). Each goes to the DLQ and moves nothing, with no second outcome or settle leg.
        const settle = legs.find((r) => r.value?.toString('utf8').includes('"leg":"settle"'))!;
        const copies = [settle, real].map((leg) => ({
          topic: config.topics.credits,
          partition: leg.partition,
          key: leg.key!,
          value: leg.value!,
          headers: headerMap(leg.headers),
        }));
        await produce(copies);
        const replayed = await waitFor(
          'the replayed settle and credit legs in the DLQ',
          async () => {
            const all = (await deadLetters(pipeline)).filter(
              (r) => r.headers['bankstream.source.topic']?.toString() === config.topics.credits,
            );
            const found = [settle, real].map((leg) => all.find((r) => r.value?.equals(leg.value!)));
            return found.every((r) => r !== undefined) ? found : undefined;
          },
          WAIT_MS,
        );
        expect(replayed[0]!.headers['bankstream.error']!.toString()).toMatch(
          /settle leg for transfer t-1 .* does not match an in-flight transfer \(completed/,
        );
        expect(replayed[1]!.headers['bankstream.error']!.toString()).toMatch(
          /credit leg for transfer t-1 from .* was already applied .*: a copy of it, not applied again/,
        );
        expect(instance.streams.status().internalRecords.rejectedRecords).toBe(2);
        // One credit and one settle leg of t-1 were ever produced by the engine: the two copies are all that was added.
        const legsAfter = await readCommitted(config.topics.credits, PARTITIONS);
        expect(legsAfter.filter((r) => r.value?.toString('utf8').includes('"leg":"settle"'))).toHaveLength(2);
        const completed = (await readCommitted(config.topics.completed, PARTITIONS)).filter((r) =>
          r.value?.toString('utf8').includes('"t-1"'),
        );
        expect(completed).toHaveLength(1);

        const afterLegs = await reconcile(config, { quietTimeoutMs: WAIT_MS });
        expect(afterLegs.differences, formatReport(afterLegs)).toEqual([]);
        expect(await storeBalance(instance, b)).toBe('3000/0');
        expect(await postgresBalances(pipeline, [a, b])).toEqual({ [a]: '70.00', [b]: '30.00' });

        // 4. A forged changelog record giving b 50,000.00: the running task never reads its changelog, a
        // restart restores from it — and stops there.
        const changelog = `${config.appId}-balances-changelog`;
        await produce([
          {
            topic: changelog,
            partition: creditPartition,
            key: Buffer.from(b),
            value: json({ balance: '5000000', inFlight: '0' }),
          },
        ]);
        const forgedRecord = (await readCommitted(changelog, PARTITIONS))
          .filter((r) => r.partition === creditPartition && r.key?.toString() === b)
          .at(-1)!;
        const coordinate = `${changelog}:${creditPartition}:${forgedRecord.offset}`;
        const found = await reconcile(config, { quietTimeoutMs: WAIT_MS });
        expect(found.differences).toEqual([expect.objectContaining({ kind: 'unauthenticated_record', accountId: b })]);
        await instance.close();
        instance = undefined;

        const restarted = await startProcessor(config, true);
        const failure = await restarted.streams.done().then(
          () => undefined,
          (error: unknown) => error as Error,
        );
        await restarted.close().catch(() => undefined);
        expect(failure?.message).toContain(
          `changelog record ${coordinate} of store balances does not verify (missing_mac)`,
        );
        expect(failure?.message).toContain(`CHANGELOG_SKIP_RECORDS=${coordinate}`);
        expect(await postgresBalances(pipeline, [a, b])).toEqual({ [a]: '70.00', [b]: '30.00' });

        // The operator's way out: restore without exactly that record.
        const skipping = loadConfig({ ...pipeline.env, CHANGELOG_SKIP_RECORDS: coordinate });
        instance = await startProcessor(skipping, true);
        const running = instance;
        await waitFor('tasks running', async () => running.streams.status().running.length === PARTITIONS, WAIT_MS);
        expect(await storeBalance(instance, b)).toBe('3000/0');
        await sendCommands(config, [
          {
            key: b,
            value: json({ type: 'withdrawal', transferId: 'w-1', accountId: b, amount: '10.00', currency: 'EUR' }),
          },
        ]);
        const final = await reconcile(skipping, { quietTimeoutMs: WAIT_MS });
        expect(final.differences, formatReport(final)).toEqual([]);
        expect(await storeBalance(instance, b)).toBe('2000/0');
        expect(await postgresBalances(pipeline, [a, b])).toEqual({ [a]: '70.00', [b]: '20.00' });
      } finally {
        await instance?.close().catch(() => undefined);
        await pipeline.cleanup();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should restore changelogs signed with the previous key during a rotation and refuse them after it',
    async () => {
      const OLD = 'old-cluster-secret-for-the-rotation-test-0123456789';
      const NEW = 'new-cluster-secret-for-the-rotation-test-9876543210';
      const pipeline = await setUpPipeline('rotate', { CLUSTER_SECRET: OLD, CLUSTER_SECRET_ID: 'k1' });
      const { config } = pipeline;
      const [a] = accountsOnTwoPartitions(config.appId);
      const withKeys = (keys: Record<string, string>) =>
        loadConfig({ ...pipeline.env, CLUSTER_SECRET_ID: '', ...keys });
      const wipeState = () => rm(config.stateDir, { recursive: true, force: true });
      let instance: Instance | undefined;
      try {
        instance = await startProcessor(config, false);
        await sendCommands(config, [
          { key: a, value: json({ type: 'open_account', accountId: a, ownerId: 'u-a', currency: 'EUR' }) },
          {
            key: a,
            value: json({ type: 'deposit', transferId: 'd-1', accountId: a, amount: '100.00', currency: 'EUR' }),
          },
        ]);
        const running = instance;
        await waitFor('the deposit applied', async () => (await storeBalance(running, a)) === '10000/0', WAIT_MS);
        await instance.close();
        instance = undefined;

        // During the rotation: signs with k2, still accepts k1. A full restore reads the k1 records.
        await wipeState();
        const rotating = withKeys({
          CLUSTER_SECRET: NEW,
          CLUSTER_SECRET_ID: 'k2',
          CLUSTER_SECRET_PREVIOUS: OLD,
          CLUSTER_SECRET_PREVIOUS_ID: 'k1',
        });
        instance = await startProcessor(rotating, false);
        const during = instance;
        await waitFor(
          'restored with the previous key',
          async () => (await storeBalance(during, a)) === '10000/0',
          WAIT_MS,
        );
        await instance.close();
        instance = undefined;

        // After it: k1 records are refused at restore (unknown_key), the store is not built from them.
        await wipeState();
        const rotated = withKeys({ CLUSTER_SECRET: NEW, CLUSTER_SECRET_ID: 'k2' });
        const after = await startProcessor(rotated, false);
        const failure = await after.streams.done().then(
          () => undefined,
          (error: unknown) => error as Error,
        );
        await after.close().catch(() => undefined);
        expect(failure?.message).toMatch(/changelog record .* does not verify \(unknown_key\)/);
      } finally {
        await instance?.close().catch(() => undefined);
        await pipeline.cleanup();
      }
    },
    TEST_TIMEOUT_MS,
  );
});
