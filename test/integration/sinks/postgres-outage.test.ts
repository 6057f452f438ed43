// PostgreSQL itself stopped (pg_ctlcluster stop) for a few seconds while the bank pipeline is under
// load: the sink pauses, resumes by itself, and nothing is lost or duplicated (reconcile passes).
//
// Stopping the server affects every database on it, so this file holds only this test, the outage
// is short (OUTAGE_MS), and three independent guards start the server again: the finally block, a
// timer in this process, and a detached shell that outlives this process if it dies or hangs.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { type Instance } from '../../../src/app/instance.ts';
import { formatReport, reconcile } from '../../../src/sinks/reconcile.ts';
import { waitFor } from '../../helpers/kafka.ts';
import { query } from '../support/postgres.ts';
import { buildWorkload, sendCommands, setUpPipeline, startProcessor } from '../reconcile/pipeline.ts';

const TEST_TIMEOUT_MS = 240_000;
const OUTAGE_MS = 6_000;
/** The in-process guard: never more than 10 s down. */
const OUTAGE_MAX_MS = 10_000;
/** The detached guard, for when this process cannot run its own. */
const WATCHDOG_MS = 20_000;
const CLUSTER_VERSION = readdirSync('/etc/postgresql')[0] ?? '15';
const run = promisify(execFile);

describe('Postgres sink outage', () => {
  it('should resume by itself and lose or duplicate nothing when Postgres is stopped for a while under load', async () => {
    const pipeline = await setUpPipeline('pgoutage', { SINK_BATCH_ROWS_MAX: '200', SINK_BATCH_MS: '50' });
    let instance: Instance | undefined;
    try {
      const workload = buildWorkload(pipeline.config.appId, 4000, 31);
      instance = await startProcessor(pipeline.config, true);
      const sink = instance.sink!;
      const half = Math.floor(workload.commands.length / 2);
      await sendCommands(pipeline.config, [...workload.setup, ...workload.commands.slice(0, half)]);
      await waitFor('the sink to write rows', async () => Number((await query<{ n: string }>(pipeline.config.databaseUrl, 'SELECT count(*) AS n FROM transactions'))[0]?.n) > 100, 60_000);

      // The second half arrives while Postgres is down: the processor goes on, the sink must wait.
      const load = sendCommands(pipeline.config, workload.commands.slice(half), 500);
      const seen = await withPostgresStopped(OUTAGE_MS, async () => {
        await waitFor('the sink to pause', async () => sink.status().state === 'paused-db-down', OUTAGE_MS - 1_000, 50);
        return sink.status();
      });
      expect(seen.state).toBe('paused-db-down');
      expect(seen.consecutiveFailures).toBeGreaterThan(0);
      await load;

      const report = await reconcile(pipeline.config, { quietTimeoutMs: 120_000 });
      expect(report.differences, formatReport(report)).toEqual([]);
      expect(report.ok).toBe(true);
      expect(sink.status().state).toBe('running');
      expect(report.counts.completed + report.counts.failed).toBe(workload.transferIds.size);
      expect(report.counts.postgresTransactions).toBe(workload.transferIds.size);
      expect(report.counts.postgresConflicts).toBe(workload.conflicts);
    } finally {
      await instance?.close().catch(() => undefined);
      await pipeline.cleanup();
    }
  }, TEST_TIMEOUT_MS);
});

/**
 * Stops the cluster, runs `during` (bounded by the outage), keeps it down for `outageMs` in all, and
 * ALWAYS starts it again, waiting until it accepts connections.
 */
async function withPostgresStopped<T>(outageMs: number, during: () => Promise<T>): Promise<T> {
  const watchdog = startWatchdog();
  const guard = setTimeout(() => void pgctl('start').catch(() => undefined), OUTAGE_MAX_MS);
  const stoppedAt = Date.now();
  try {
    await pgctl('stop');
    const result = await during();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, outageMs - (Date.now() - stoppedAt))));
    return result;
  } finally {
    clearTimeout(guard);
    await pgctl('start').catch(() => undefined);
    await waitFor('Postgres to accept connections', async () => (await run('pg_isready', ['-h', '127.0.0.1', '-q']).then(() => true, () => false)), 30_000, 200);
    stopWatchdog(watchdog);
  }
}

/** Exit status 2 of `start` means "already running": fine, that is what a guard wants. */
async function pgctl(action: 'start' | 'stop'): Promise<void> {
  const mode = action === 'stop' ? ['--mode=fast'] : [];
  await run('pg_ctlcluster', ['--skip-systemctl-redirect', ...mode, CLUSTER_VERSION, 'main', action]).catch((error: { code?: number }) => {
    if (!(action === 'start' && error.code === 2)) throw error;
  });
}

/** A detached shell that starts the cluster after WATCHDOG_MS even if this process is gone. */
function startWatchdog(): ChildProcess {
  const script = `sleep ${WATCHDOG_MS / 1000}; pg_ctlcluster --skip-systemctl-redirect ${CLUSTER_VERSION} main start`;
  const child = spawn('bash', ['-c', script], { detached: true, stdio: 'ignore' });
  child.unref();
  return child;
}

/** Kills the watchdog's process group (the shell and its sleep), by its own id. */
function stopWatchdog(watchdog: ChildProcess): void {
  if (watchdog.pid !== undefined) {
    try {
      process.kill(-watchdog.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}
