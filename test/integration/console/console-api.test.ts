// GET /v1/admin/console (issue 24), the endpoint behind the operations console, on a real instance under
// load: admin only (401 without a token or with a bad one, 403 for a customer and a teller), and the shape
// the page draws from — topology from the engine's graph, the partition grid from the signed directory,
// flow samples with rates, a dead letter with its error headers, a sink reject. The page's static files are
// a fixed list with a strict Content-Security-Policy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConsoleSnapshot } from '../../../src/http/routes/console.ts';
import { waitFor } from '../../helpers/kafka.ts';
import { call, waitReady } from '../http/stack.ts';
import { ApiLoad, type ConsoleStack, forgeCreditLeg, startConsoleStack, unreadableOutcome } from './support.ts';

let setup: ConsoleStack;
let url: string;
let load: ApiLoad;

beforeAll(async () => {
  setup = await startConsoleStack('consoleapi');
  url = setup.stack.instances[0]!.http!.url;
  await waitReady(url);
  load = new ApiLoad(() => url, setup.tokens.teller, setup.accounts);
});

afterAll(async () => {
  await load?.stop();
  await setup?.stack.cleanup();
});

async function snapshot(): Promise<ConsoleSnapshot> {
  const response = await call(url, 'GET', '/v1/admin/console', { token: setup.tokens.admin });
  expect(response.status).toBe(200);
  return response.body as ConsoleSnapshot;
}

describe('GET /v1/admin/console', () => {
  it('should answer 401 without a token or with a forged one, and 403 to a customer and a teller', async () => {
    const none = await call(url, 'GET', '/v1/admin/console');
    expect(none.status).toBe(401);
    expect((none.body as { code: string }).code).toBe('unauthenticated');
    const forged = await call(url, 'GET', '/v1/admin/console', { token: `${setup.tokens.admin.slice(0, -4)}AAAA` });
    expect(forged.status).toBe(401);
    for (const token of [setup.tokens.customer, setup.tokens.teller]) {
      const refused = await call(url, 'GET', '/v1/admin/console', { token });
      expect(refused.status).toBe(403);
      expect((refused.body as { code: string }).code).toBe('forbidden');
      expect(refused.text).not.toContain('"cluster"');
    }
  });

  it('should describe the topology the engine runs: both sources, the bank processor with its stores, the sinks and the credits loop', async () => {
    const { topology } = await snapshot();
    const byName = new Map(topology.nodes.map((n) => [n.name, n]));
    const prefix = setup.stack.prefix;
    expect(byName.get('commands')).toMatchObject({ kind: 'source', topics: [`${prefix}-transaction_initiated`] });
    expect(byName.get('credits')).toMatchObject({ kind: 'source', topics: [`${prefix}-credits`] });
    const bank = byName.get('bank')!;
    expect(bank.kind).toBe('processor');
    expect(bank.stores.length).toBeGreaterThan(0);
    expect(topology.stores.map((s) => s.name).sort()).toEqual([...bank.stores].sort());
    for (const store of topology.stores)
      if (store.logged) expect(store.changelog).toBe(`${prefix}-${store.name}-changelog`);
    const sinkTopics = topology.nodes.filter((n) => n.kind === 'sink').flatMap((n) => n.topics);
    expect(sinkTopics).toEqual(
      expect.arrayContaining([
        `${prefix}-transaction_completed`,
        `${prefix}-transaction_failed`,
        `${prefix}-audit_log`,
        `${prefix}-transaction_initiated.dlq`,
        `${prefix}-credits`,
      ]),
    );
    expect(topology.repartitionTopics).toEqual([`${prefix}-credits`]);
    expect(topology.text).toContain('Processor: bank');
  });

  it('should show every partition running on the one instance, in the generation it published', async () => {
    const { cluster, instance } = await snapshot();
    expect(instance).toMatchObject({ instanceId: 'c1', state: 'RUNNING', url });
    expect(instance.running.sort()).toEqual([0, 1, 2, 3]);
    expect(cluster.partitions).toBe(4);
    expect(cluster.generation).toBe(instance.generation);
    expect(cluster.instances).toEqual([
      expect.objectContaining({ instanceId: 'c1', state: 'RUNNING', generation: instance.generation, url }),
    ]);
    expect(cluster.grid).toEqual(
      [0, 1, 2, 3].map((partition) =>
        expect.objectContaining({ partition, state: 'running', owner: 'c1', standbys: [] }),
      ),
    );
  });

  it('should sample the flow under load: commands/s, records/s, outcomes/s by code, commits, latency quantiles, sink rows/s', async () => {
    const busy = await waitFor(
      'a flow sample with commands, outcomes, commits and sink rows',
      async () => {
        const { flow } = await snapshot();
        return flow.samples.find(
          (s) =>
            s.commandsPerS > 0 &&
            s.recordsPerS > 0 &&
            (s.outcomesPerS['completed'] ?? 0) > 0 &&
            s.commitsPerS > 0 &&
            s.latencyP50Ms !== null &&
            (s.sinkRowsPerS ?? 0) > 0,
        );
      },
      30_000,
      500,
    );
    expect(busy.commitMsAvg).toBeGreaterThan(0);
    expect(busy.latencyP99Ms!).toBeGreaterThanOrEqual(busy.latencyP50Ms!);
    expect(Object.keys(busy.lag).sort()).toEqual(['0', '1', '2', '3']);
    expect(busy.sinkLag).toBeGreaterThanOrEqual(0);
    const { flow } = await snapshot();
    expect(flow.intervalMs).toBe(2000);
    expect(flow.sink).toMatchObject({ state: 'running' });
    for (let i = 1; i < flow.samples.length; i++) expect(flow.samples[i]!.t).toBeGreaterThan(flow.samples[i - 1]!.t);
  });

  it('should list a forged credit leg as a dead letter with its error headers, and an unreadable outcome as a sink reject', async () => {
    const first = await snapshot();
    expect(first.deadLetters.topic).toBe(`${setup.stack.prefix}-transaction_initiated.dlq`);
    await forgeCreditLeg(setup.stack, setup.accounts[0]!);
    await unreadableOutcome(setup.stack);
    const shown = await waitFor(
      'the dead letter and the sink reject in the console',
      async () => {
        const s = await snapshot();
        return s.deadLetters.records.length > 0 && (s.deadLetters.sinkRejects ?? []).length > 0 ? s : undefined;
      },
      30_000,
      500,
    );
    const letter = shown.deadLetters.records[0]!;
    expect(letter.headers['bankstream.source.topic']).toBe(`${setup.stack.prefix}-credits`);
    expect(letter.headers['bankstream.error']).toMatch(/MAC|mac|signed/);
    expect(letter.key).toBe(setup.accounts[0]);
    const reject = shown.deadLetters.sinkRejects![0]!;
    expect(reject).toMatchObject({
      sourceTopic: `${setup.stack.prefix}-transaction_completed`,
      sourcePartition: 0,
      resolvedAt: null,
    });
    expect(reject.error.length).toBeGreaterThan(0);
  });
});

describe('the console page', () => {
  it('should redirect /console to /console/ and serve the page, its modules and uPlot under a strict CSP', async () => {
    const redirect = await fetch(`${url}/console`, { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toBe('/console/');
    const page = await fetch(`${url}/console/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(await page.text()).toContain('<script type="module" src="console.js">');
    for (const file of ['console.js', 'api.js', 'views.js', 'charts.js', 'topology.js', 'vendor/uPlot.esm.js']) {
      const response = await fetch(`${url}/console/${file}`);
      expect(response.status, file).toBe(200);
      expect(response.headers.get('content-type'), file).toMatch(/^text\/javascript/);
      await response.arrayBuffer();
    }
  });

  it('should answer 404 for any other path under /console, traversal included', async () => {
    for (const file of [
      'package.json',
      '..%2Fpackage.json',
      'vendor/..%2F..%2Fpackage.json',
      'constructor',
      'index.html.bak',
    ]) {
      const response = await fetch(`${url}/console/${file}`);
      expect([400, 404], file).toContain(response.status);
      await response.arrayBuffer();
    }
  });
});
