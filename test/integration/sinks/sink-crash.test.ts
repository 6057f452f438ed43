// The sink as a child process (`node src/cli/main.ts sink`), SIGKILLed while its Postgres transaction
// is open, several times, under a bank workload: Postgres must still hold every outcome exactly once
// and the balances the processor holds (reconcile passes).
import type { ChildProcess } from 'node:child_process';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { Instance } from '../../../src/app/instance.ts';
import { formatReport } from '../../../src/ops/reconcile/report.ts';
import { reconcile } from '../../../src/ops/reconcile/reconcile.ts';
import {
  buildWorkload,
  runCli,
  sendCommands,
  setUpPipeline,
  startProcessor,
  stopChild,
} from '../reconcile/pipeline.ts';

const TEST_TIMEOUT_MS = 300_000;
const KILLS = 4;
const IN_TRANSACTION_WAIT_MS = 30_000;

describe('Postgres sink crash', () => {
  it(
    'should hold every outcome exactly once and the processor balances when the sink is SIGKILLed mid-batch several times',
    async () => {
      // Small batches with a short deadline: the sink is inside a transaction most of the time it works.
      const pipeline = await setUpPipeline('sinkcrash', {
        SINK_BATCH_ROWS_MAX: '100',
        SINK_BATCH_MS: '20',
        LOG_LEVEL: 'error',
      });
      const monitor = new pg.Client({ connectionString: pipeline.config.databaseUrl });
      let instance: Instance | undefined;
      let sink: ChildProcess | undefined;
      try {
        await monitor.connect();
        const workload = buildWorkload(pipeline.config.appId, 4000, 23);
        instance = await startProcessor(pipeline.config, false);
        await sendCommands(pipeline.config, workload.setup);
        // Load keeps arriving while the sink is killed and restarted.
        const load = sendCommands(pipeline.config, workload.commands, 400);
        let killedInTransaction = 0;
        for (let kill = 0; kill < KILLS; kill++) {
          sink = runCli(pipeline.env, ['sink']);
          const before = await rollbacks(monitor);
          await waitForOpenTransaction(monitor, `${pipeline.config.appId}-sink`);
          expect((await stopChild(sink, 'SIGKILL')).signal).toBe('SIGKILL');
          // Postgres rolls back the transaction of a connection that dies inside it: proof of a mid-batch kill.
          if (await rolledBack(monitor, before)) killedInTransaction++;
        }
        await load;
        expect(killedInTransaction).toBeGreaterThanOrEqual(KILLS - 1);

        sink = runCli(pipeline.env, ['sink']);
        const report = await reconcile(pipeline.config, { quietTimeoutMs: 120_000 });
        expect(report.differences, formatReport(report)).toEqual([]);
        expect(report.ok).toBe(true);
        expect(report.counts.completed + report.counts.failed).toBe(workload.transferIds.size);
        expect(report.counts.postgresTransactions).toBe(workload.transferIds.size);
        expect(report.counts.postgresConflicts).toBe(workload.conflicts);
        const duplicates = await monitor.query(
          `SELECT count(*)::int AS n FROM audit_logs GROUP BY source_topic, source_partition, source_offset HAVING count(*) > 1`,
        );
        expect(duplicates.rows).toEqual([]);
        expect(await stopChild(sink, 'SIGTERM')).toEqual({ code: 0, signal: null });
      } finally {
        if (sink) await stopChild(sink, 'SIGKILL');
        await monitor.end().catch(() => undefined);
        await instance?.close().catch(() => undefined);
        await pipeline.cleanup();
      }
    },
    TEST_TIMEOUT_MS,
  );
});

/** Polls pg_stat_activity, without sleeping (a batch lasts milliseconds), until the sink's connection is inside a batch transaction. */
async function waitForOpenTransaction(monitor: pg.Client, applicationName: string): Promise<void> {
  const deadline = Date.now() + IN_TRANSACTION_WAIT_MS;
  while (Date.now() < deadline) {
    // A batch is one explicit transaction: idle in transaction between its statements, or active on
    // one of its writes. Autocommit statements (loading offsets, the staging DDL) never match.
    const { rows } = await monitor.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1
          AND (state = 'idle in transaction' OR (state = 'active' AND query ~ '^\\s*(COPY|INSERT|WITH)'))`,
      [applicationName],
    );
    if ((rows[0]?.n ?? 0) > 0) return;
  }
  throw new Error(`the sink never opened a transaction within ${IN_TRANSACTION_WAIT_MS} ms`);
}

/** Rolled-back transactions in this database so far (the sink itself never rolls back unless something fails). */
async function rollbacks(monitor: pg.Client): Promise<number> {
  await monitor.query('SELECT pg_stat_clear_snapshot()');
  const { rows } = await monitor.query<{ n: string }>(
    'SELECT xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()',
  );
  return Number(rows[0]?.n ?? 0);
}

/** Whether a rollback shows up within a few seconds (a killed backend reports its statistics as it exits). */
async function rolledBack(monitor: pg.Client, before: number): Promise<boolean> {
  for (
    const deadline = Date.now() + 5_000;
    Date.now() < deadline;
    await new Promise((resolve) => setTimeout(resolve, 100))
  ) {
    if ((await rollbacks(monitor)) > before) return true;
  }
  return false;
}
