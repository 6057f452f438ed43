// PostgreSQL itself goes down (pg_ctl stop -m immediate: every connection cut, no shutdown checkpoint)
// for a few seconds while the bank pipeline is under load: the sink pauses, resumes by itself, and
// nothing is lost or duplicated (reconcile passes).
//
// The server stopped is a private one (initdb in a temporary folder, on a free port, see
// test/chaos/services.ts PrivatePostgres), never the machine's: the other tests and sessions on the
// machine's PostgreSQL never notice. It is always stopped and its folder deleted, by the test's
// finally and, should the test time out before that runs, by afterAll.
import { afterAll, describe, expect, it } from 'vitest';
import type { Instance } from '../../../src/app/instance.ts';
import { formatReport } from '../../../src/ops/reconcile/report.ts';
import { reconcile } from '../../../src/ops/reconcile/reconcile.ts';
import { PrivatePostgres } from '../../chaos/services.ts';
import { freePort } from '../../helpers/pg-replica.ts';
import { waitFor } from '../../helpers/kafka.ts';
import { query } from '../support/postgres.ts';
import { buildWorkload, sendCommands, setUpPipeline, startProcessor } from '../reconcile/pipeline.ts';

const TEST_TIMEOUT_MS = 240_000;
const OUTAGE_MS = 6_000;
/** Its own range: the other private-server tests use 56_000-57_800 and 59_000-59_400. */
const PORT_FROM = 58_000;
const PORT_TO = 58_800;

let postgres: PrivatePostgres | undefined;

afterAll(async () => {
  await postgres?.destroy();
}, 60_000);

describe('Postgres sink outage', () => {
  it(
    'should resume by itself and lose or duplicate nothing when Postgres is stopped for a while under load',
    async () => {
      const server = new PrivatePostgres(await freePort(PORT_FROM, PORT_TO));
      postgres = server;
      try {
        await server.init();
        await underLoadWithOutage(server);
      } finally {
        await server.destroy();
      }
    },
    TEST_TIMEOUT_MS,
  );
});

async function underLoadWithOutage(server: PrivatePostgres): Promise<void> {
  const pipeline = await setUpPipeline(
    'pgoutage',
    { SINK_BATCH_ROWS_MAX: '200', SINK_BATCH_MS: '50' },
    { postgresServerUrl: server.url('postgres') },
  );
  let instance: Instance | undefined;
  try {
    const workload = buildWorkload(pipeline.config.appId, 4000, 31);
    instance = await startProcessor(pipeline.config, true);
    const sink = instance.sink!;
    const half = Math.floor(workload.commands.length / 2);
    await sendCommands(pipeline.config, [...workload.setup, ...workload.commands.slice(0, half)]);
    await waitFor(
      'the sink to write rows',
      async () =>
        Number(
          (await query<{ n: string }>(pipeline.config.databaseUrl, 'SELECT count(*) AS n FROM transactions'))[0]?.n,
        ) > 100,
      60_000,
    );

    // The second half arrives while Postgres is down: the processor goes on, the sink must wait.
    const load = sendCommands(pipeline.config, workload.commands.slice(half), 500);
    const seen = await withPostgresStopped(server, OUTAGE_MS, async () => {
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
}

/**
 * Stops the private server at once, runs `during`, keeps it down for `outageMs` in all, then starts
 * it again on the same data folder and port (pg_ctl start -w: it accepts connections on return). A
 * failed `during` still restarts it, so the finally blocks can clean up the database.
 */
async function withPostgresStopped<T>(server: PrivatePostgres, outageMs: number, during: () => Promise<T>): Promise<T> {
  const stoppedAt = Date.now();
  await server.stop('immediate');
  try {
    const result = await during();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, outageMs - (Date.now() - stoppedAt))));
    return result;
  } finally {
    await server.start();
  }
}
