import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { Instance } from '../../../src/app/instance.ts';
import { currencyDigits, formatMoney } from '../../../src/bank/money.ts';
import type { BalanceRow } from '../../../src/bank/stores.ts';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { formatReport } from '../../../src/ops/reconcile/report.ts';
import type { ReconcileReport } from '../../../src/ops/reconcile/model.ts';
import { reconcile } from '../../../src/ops/reconcile/reconcile.ts';
import { waitFor } from '../../helpers/kafka.ts';
import { query } from '../support/postgres.ts';
import {
  PARTITIONS,
  type Pipeline,
  type Workload,
  buildWorkload,
  exited,
  runCli,
  sendCommands,
  setUpPipeline,
  startProcessor,
} from './pipeline.ts';

const TEST_TIMEOUT_MS = 240_000;
const QUIET_TIMEOUT_MS = 90_000;

/** Runs the whole workload through the processor and the in-process sink. */
async function runWorkload(pipeline: Pipeline, workload: Workload): Promise<Instance> {
  const instance = await startProcessor(pipeline.config, true);
  await sendCommands(pipeline.config, workload.setup);
  await sendCommands(pipeline.config, workload.commands);
  return instance;
}

/** Exactly one outcome per transferId the workload owes, and every conflict once. */
function expectEveryOutcomeOnce(report: ReconcileReport, workload: Workload): void {
  expect(report.counts.completed + report.counts.failed).toBe(workload.transferIds.size);
  expect(report.counts.postgresTransactions).toBe(workload.transferIds.size);
  expect(report.counts.conflicts).toBe(workload.conflicts);
  expect(report.counts.postgresConflicts).toBe(workload.conflicts);
}

describe('reconcile', () => {
  it(
    'should pass on a clean run and fail naming the account when a balance is tampered with in Postgres',
    async () => {
      const pipeline = await setUpPipeline('recclean');
      let instance: Instance | undefined;
      try {
        const workload = buildWorkload(pipeline.config.appId, 3000, 7);
        instance = await runWorkload(pipeline, workload);
        const clean = await reconcile(pipeline.config, { quietTimeoutMs: QUIET_TIMEOUT_MS });
        expect(clean.differences, formatReport(clean)).toEqual([]);
        expect(clean).toMatchObject({
          ok: true,
          quiet: { quiet: true },
          counts: { inFlightAccounts: 0, inFlightTransfers: 0, storeAccounts: workload.accounts.length },
        });
        expect(clean.counts.failed).toBeGreaterThan(100);
        expectEveryOutcomeOnce(clean, workload);
        expect(clean.currencies.map((c) => c.currency)).toEqual(['EUR', 'USD']);

        const victim = workload.accounts[3]!;
        await query(pipeline.config.databaseUrl, 'UPDATE accounts SET balance = balance + 1 WHERE id = $1', [victim]);
        const tampered = await reconcile(pipeline.config, { quietTimeoutMs: 5_000 });
        expect(tampered.ok).toBe(false);
        expect(tampered.differences).toEqual([
          expect.objectContaining({ kind: 'balance_mismatch', accountId: victim }),
        ]);
        expect(tampered.differingAccounts.map((a) => a.accountId)).toEqual([victim]);
        expect(formatReport(tampered)).toContain(`FAILED: 1 difference(s); accounts: ${victim}`);

        // The CLI prints the same verdict and exits 1.
        const cli = runCli(pipeline.env, ['reconcile', '--wait-quiet-ms', '5000'], 'pipe');
        let stdout = '';
        cli.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
        expect(await exited(cli)).toEqual({ code: 1, signal: null });
        expect(stdout).toMatch(new RegExp(`balance_mismatch +${victim}: postgres \\d+\\.\\d\\d ≠ stores`));
      } finally {
        await instance?.close().catch(() => undefined);
        await pipeline.cleanup();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should report missing rows, lag and a wrong API balance when the sink is behind and the API disagrees',
    async () => {
      const pipeline = await setUpPipeline('recbehind');
      let instance: Instance | undefined;
      let api: http.Server | undefined;
      try {
        const workload = buildWorkload(pipeline.config.appId, 300, 11, 8);
        instance = await startProcessor(pipeline.config, false);
        await sendCommands(pipeline.config, [...workload.setup, ...workload.commands]);
        const wrong = workload.accounts[1]!;
        api = await startStubApi(instance, wrong);
        const url = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
        // Nothing is ever sunk, so the system never becomes quiet; wait for the processor only.
        const processed = async () => {
          const report = await reconcile(pipeline.config, { quietTimeoutMs: 0, apiUrl: url, apiToken: 'test-token' });
          return report.quiet.processorPending === 0 &&
            report.counts.completed + report.counts.failed === workload.transferIds.size
            ? report
            : undefined;
        };
        const report = await waitFor('the processor to decide every command', processed, QUIET_TIMEOUT_MS);
        expect(report.ok).toBe(false);
        expect(report.quiet).toMatchObject({ quiet: false, processorPending: 0, openTransactions: [] });
        expect(report.quiet.sinkPending).toBeGreaterThan(0);
        const kinds = new Set(report.differences.map((d) => d.kind));
        const conflictKinds = workload.conflicts > 0 ? ['conflicts_mismatch'] : [];
        expect([...kinds].sort()).toEqual(
          ['balance_mismatch', 'missing_account', 'not_quiet', 'transaction_missing', ...conflictKinds].sort(),
        );
        const apiMismatch = report.differences.filter((d) => d.kind === 'balance_mismatch');
        expect(apiMismatch).toEqual([
          expect.objectContaining({ accountId: wrong, message: expect.stringContaining('api') }),
        ]);
        expect(report.counts.apiAccounts).toBe(workload.accounts.length);
        expect(report.differencesTotal).toBe(
          1 + 1 + workload.accounts.length + workload.transferIds.size + conflictKinds.length,
        );
      } finally {
        await new Promise((resolve) => (api ? api.close(resolve) : resolve(undefined)));
        await instance?.close().catch(() => undefined);
        await pipeline.cleanup();
      }
    },
    TEST_TIMEOUT_MS,
  );
});

/**
 * A stand-in for the HTTP API (built elsewhere): answers GET /v1/accounts/:id from the owning task's
 * store, as the real one will, and one cent more for `wrongAccount`. Requires the bearer token.
 */
async function startStubApi(instance: Instance, wrongAccount: string): Promise<http.Server> {
  const server = http.createServer((request, response) => {
    void (async () => {
      const id = decodeURIComponent(/^\/v1\/accounts\/([^/]+)$/.exec(request.url ?? '')?.[1] ?? '');
      const store = instance.streams.task(partitionForKey(id, PARTITIONS))?.stores.get('balances');
      const row = (await store?.readCommitted(id)) as BalanceRow | undefined;
      if (request.headers.authorization !== 'Bearer test-token') return send(response, 401, {});
      if (!row) return send(response, 404, {});
      const currency = id.endsWith('-usd') ? 'USD' : 'EUR';
      const minor = BigInt(row.balance) + (id === wrongAccount ? 1n : 0n);
      send(response, 200, { accountId: id, balance: formatMoney(minor, currencyDigits(currency)!), currency });
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function send(response: http.ServerResponse, status: number, body: object): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
