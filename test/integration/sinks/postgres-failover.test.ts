// A PostgreSQL failover under load: the bank pipeline writes through the sink to a private primary with
// a streaming replica; the primary is SIGKILLed, the replica promoted (pg_ctl promote), and the sink,
// given both hosts with target_session_attrs=read-write, finds the new primary by itself. Reconcile
// must then be clean: every outcome exactly once, the ledger's balances.
//
// The second case makes the replica really behind at the kill (its WAL stream cut off first): the new
// primary holds OLDER sink offsets than the old one had, and the sink must replay the lost tail from
// Kafka (it re-reads its offsets from the database after every reconnect).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Instance } from '../../../src/app/instance.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { ensureTopics } from '../../../src/ops/topics.ts';
import { migrate } from '../../../src/sinks/migrate.ts';
import { formatReport } from '../../../src/ops/reconcile/report.ts';
import { reconcile } from '../../../src/ops/reconcile/reconcile.ts';
import { waitFor } from '../../helpers/kafka.ts';
import { PrivatePostgresPair, type PgNode, freePortPair } from '../../helpers/pg-replica.ts';
import { buildWorkload, sendCommands, startProcessor } from '../reconcile/pipeline.ts';
import { deleteTopicsWithPrefix, prefixedEnv, uniquePrefix } from '../support/kafka.ts';

const TEST_TIMEOUT_MS = 300_000;
const DATABASE = 'bankstream_failover';
const COMMANDS = 3000;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

async function storedOffsetsTotal(pair: PrivatePostgresPair, node: PgNode): Promise<bigint> {
  const [row] = await pair.sql<{ total: string | null }>(
    node,
    'SELECT sum(next_offset)::text AS total FROM sink_offsets',
    [],
    DATABASE,
  );
  return BigInt(row?.total ?? '0');
}

describe('Postgres sink failover', () => {
  for (const behind of [false, true]) {
    const when = behind
      ? 'when the replica was behind at the kill (the lost tail is replayed from Kafka)'
      : 'when the replica streams normally';
    it(
      `should continue on the promoted replica by itself and keep every outcome exactly once ${when}`,
      async () => {
        const pair = new PrivatePostgresPair(await freePortPair(56_000, 56_800));
        cleanups.push(() => pair.destroy());
        await pair.init();
        const prefix = uniquePrefix(behind ? 'pgfobehind' : 'pgfo');
        const stateDir = await mkdtemp(path.join(tmpdir(), 'bankstream-pgfo-'));
        cleanups.push(
          () => deleteTopicsWithPrefix(prefix),
          () => rm(stateDir, { recursive: true, force: true }),
        );
        const env = prefixedEnv(prefix, {
          PARTITIONS: '4',
          DATABASE_URL: pair.url(DATABASE),
          STATE_DIR: stateDir,
          INSTANCE_ID: 'i0',
          COMMIT_INTERVAL_MS: '100',
          SINK_BATCH_ROWS_MAX: '100',
          SINK_BATCH_MS: '50',
          LOG_LEVEL: 'warn',
        });
        const config = loadConfig(env);
        await ensureTopics(config);
        await migrate({ databaseUrl: config.databaseUrl });
        const workload = buildWorkload(config.appId, COMMANDS, behind ? 23 : 17);
        const instance: Instance = await startProcessor(config, true);
        cleanups.push(() => instance.close());
        const sink = instance.sink!;

        const third = Math.floor(workload.commands.length / 3);
        await sendCommands(config, [...workload.setup, ...workload.commands.slice(0, third)]);
        await waitFor(
          'the sink to write on the primary',
          async () => (await storedOffsetsTotal(pair, pair.primary)) > 200n,
          90_000,
          100,
        );
        await pair.waitReplicaCaughtUp();
        const load = sendCommands(config, workload.commands.slice(third), 300);

        let offsetsOnReplica = 0n;
        if (behind) {
          await pair.detachReplica();
          offsetsOnReplica = await storedOffsetsTotal(pair, pair.replica);
          // The primary moves on alone: these batches exist nowhere else.
          await waitFor(
            'the sink to write past the replica',
            async () => (await storedOffsetsTotal(pair, pair.primary)) > offsetsOnReplica + 200n,
            90_000,
            50,
          );
        } else {
          await waitFor(
            'the sink to write under load',
            async () => (await storedOffsetsTotal(pair, pair.primary)) > 600n,
            90_000,
            50,
          );
        }
        const offsetsOnPrimary = await storedOffsetsTotal(pair, pair.primary);
        const batchesAtKill = sink.status().batchesWritten;
        const connectionsAtKill = sink.connections();
        const killedAtMs = Date.now();
        await pair.kill(pair.primary);
        await pair.promote(pair.replica);
        const promotedAtMs = Date.now();
        const offsetsAfterPromotion = await storedOffsetsTotal(pair, pair.replica);
        if (behind) {
          // The case is real: the new primary lost the old primary's last commits, offsets included.
          expect(offsetsAfterPromotion).toBeLessThan(offsetsOnPrimary);
          expect(offsetsAfterPromotion).toBe(offsetsOnReplica);
        }

        await waitFor(
          'the sink to write on the new primary',
          async () => sink.connections() > connectionsAtKill && sink.status().batchesWritten > batchesAtKill,
          120_000,
          20,
        );
        const writingAgainMs = Date.now() - killedAtMs;
        console.log(
          `postgres failover (${behind ? 'replica behind' : 'replica streaming'}): promoted ${promotedAtMs - killedAtMs} ms after the kill, the sink wrote again ${writingAgainMs} ms after the kill`,
        );
        await load;

        const report = await reconcile(config, { quietTimeoutMs: 120_000 });
        expect(report.differences, formatReport(report)).toEqual([]);
        expect(report.ok).toBe(true);
        expect(report.counts.completed + report.counts.failed).toBe(workload.transferIds.size);
        expect(report.counts.postgresTransactions).toBe(workload.transferIds.size);
        expect(report.counts.postgresConflicts).toBe(workload.conflicts);
        expect(sink.status().state).toBe('running');
        // Everything is on the promoted replica, and past where the old primary stopped.
        expect(await storedOffsetsTotal(pair, pair.replica)).toBeGreaterThan(offsetsOnPrimary);
      },
      TEST_TIMEOUT_MS,
    );
  }
});
