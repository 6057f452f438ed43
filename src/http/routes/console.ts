// The operations console (issue 24): the page at /console and the admin endpoint behind it.
//
// Served on the API port, not on MANAGEMENT_PORT: the page logs in with POST /v1/auth/token (API port
// only), looks accounts up through the API routes with the same token, and shows account data, so it needs
// an admin token like the rest of the API; the management port answers without a token and is meant for
// probes and Prometheus on the cluster network. The static files (HTML, CSS, ES modules, uPlot) hold no
// data and are public; every datum comes from GET /v1/admin/console, admin role only.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Router } from '@koa/router';
import type { Context } from 'koa';
import { buildBankTopology } from '../../bank/topology.ts';
import { authenticate, requireRole } from '../auth.ts';
import type { ApiDeps } from '../context.ts';
import { unavailable } from '../../problems/errors.ts';
import { type ClusterView, type TopologyView, clusterView, topologyView } from '../console/cluster.ts';
import { type DeadLetter, DeadLetterFeed, type SinkReject, latestSinkRejects } from '../console/dead-letters.ts';
import { type FlowSample, FlowRing, SAMPLE_INTERVAL_MS } from '../console/flow.ts';
import type { SinkStatus } from '../../sinks/status.ts';

const require = createRequire(import.meta.url);
const PAGE_DIR = fileURLToPath(new URL('../../console/', import.meta.url));

/** The files of the page: a fixed list, so that no request path ever names a file. */
const FILES: Record<string, { path: string; type: string }> = {
  '': { path: `${PAGE_DIR}index.html`, type: 'text/html; charset=utf-8' },
  'console.css': { path: `${PAGE_DIR}console.css`, type: 'text/css; charset=utf-8' },
  'console.js': { path: `${PAGE_DIR}console.js`, type: 'text/javascript; charset=utf-8' },
  'api.js': { path: `${PAGE_DIR}api.js`, type: 'text/javascript; charset=utf-8' },
  'views.js': { path: `${PAGE_DIR}views.js`, type: 'text/javascript; charset=utf-8' },
  'charts.js': { path: `${PAGE_DIR}charts.js`, type: 'text/javascript; charset=utf-8' },
  'topology.js': { path: `${PAGE_DIR}topology.js`, type: 'text/javascript; charset=utf-8' },
  'vendor/uPlot.esm.js': { path: require.resolve('uplot/dist/uPlot.esm.js'), type: 'text/javascript; charset=utf-8' },
  'vendor/uPlot.min.css': { path: require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

// Everything from this origin only: no inline script, no third party, not framed.
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export interface ConsoleSnapshot {
  at: string;
  instance: {
    instanceId: string;
    url: string;
    state: string;
    generation: number | null;
    assigned: number[];
    running: number[];
    standby: number[];
    standbyLagRecords: number;
    restoredRecords: number;
    stopped: Array<{ topic: string; partition: number; code: string; reason: string }>;
    brokerUnavailable: string[];
  };
  topology: TopologyView;
  cluster: ClusterView;
  flow: { intervalMs: number; samples: FlowSample[]; sink: SinkStatus | null };
  deadLetters: {
    topic: string;
    tailing: boolean;
    records: DeadLetter[];
    sinkRejects: SinkReject[] | null;
    /** Why sinkRejects is null (PostgreSQL unreachable). */
    sinkRejectsError: string | null;
  };
}

/** The console's parts of one API server (sampling ring, dead-letter tail), closed with it. */
class ConsoleParts {
  readonly flow: FlowRing;
  readonly deadLetters: DeadLetterFeed;
  readonly topology: TopologyView;

  constructor(deps: ApiDeps) {
    const { config, streams, sink } = deps;
    this.flow = new FlowRing({
      registry: deps.metrics.registry,
      lag: () => streams.lag(),
      sink: sink && {
        rowsWritten: () => sink.status().rowsWritten,
        lag: () => sink.lag().reduce((total, p) => total + p.records, 0),
      },
    });
    this.deadLetters = new DeadLetterFeed(config, deps.logger.child({ component: 'console' }));
    const topology = buildBankTopology({
      topics: config.topics,
      dedupRetentionMs: config.dedupRetentionMs,
      processingExceptionHandler: config.processingExceptionHandler,
    });
    this.topology = topologyView(topology, config.appId);
  }

  async close(): Promise<void> {
    this.flow.stop();
    await this.deadLetters.close();
  }
}

const parts = new WeakMap<ApiDeps, ConsoleParts>();

/** The page, the admin endpoint, and the console's parts (started now, closed by closeConsole). */
export function consoleRoutes(router: Router, deps: ApiDeps): void {
  const own = new ConsoleParts(deps);
  parts.set(deps, own);
  own.flow.start();
  consolePageRoutes(router);
  consoleApiRoutes(router, deps);
}

/** The static files of the page (public: they hold no data). */
export function consolePageRoutes(router: Router): void {
  // The router is not strict: this route gets both /console and /console/; the page's relative URLs need the slash.
  router.get('/console', async (ctx) => {
    if (ctx.path.endsWith('/')) await servePage(ctx, '');
    else ctx.redirect('/console/');
  });
  router.get('/console/:file', (ctx) => servePage(ctx, ctx.params['file'] ?? ''));
  router.get('/console/vendor/:file', (ctx) => servePage(ctx, `vendor/${ctx.params['file'] ?? ''}`));
}

/** GET /v1/admin/console (admin only), the snapshot the page draws; in the OpenAPI document. */
export function consoleApiRoutes(router: Router, deps: ApiDeps): void {
  const auth = authenticate(deps.authenticator);
  router.get('/v1/admin/console', auth, async (ctx) => {
    requireRole(ctx, 'admin');
    const own = parts.get(deps);
    if (!own) throw unavailable('not_ready', 'the console is stopped (the server is closing)', 1);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await snapshot(deps, own);
  });
}

/** Stops the console's sampling and dead-letter tail (server close). */
export async function closeConsole(deps: ApiDeps): Promise<void> {
  await parts.get(deps)?.close();
  parts.delete(deps);
}

const cache = new Map<string, Buffer>();

async function servePage(ctx: Context, name: string): Promise<void> {
  const file = Object.hasOwn(FILES, name) ? FILES[name] : undefined;
  if (!file) return; // 404 from the router
  let body = cache.get(name);
  if (!body) {
    body = await readFile(file.path);
    cache.set(name, body);
  }
  ctx.set('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('Cache-Control', 'no-cache');
  ctx.type = file.type;
  ctx.body = body;
}

async function snapshot(deps: ApiDeps, own: ConsoleParts): Promise<ConsoleSnapshot> {
  const { config, streams, sink } = deps;
  const status = streams.status();
  const lag = streams.lag();
  const dlq = own.deadLetters.latest();
  let sinkRejects: SinkReject[] | null = null;
  let sinkRejectsError: string | null = null;
  try {
    sinkRejects = await latestSinkRejects(deps.readModel.pool);
  } catch (error) {
    sinkRejectsError = `sink_rejects could not be read: ${(error as Error).message}`;
  }
  return {
    at: new Date().toISOString(),
    instance: {
      instanceId: config.instanceId,
      url: deps.selfUrl(),
      state: status.state,
      generation: status.generationId ?? null,
      assigned: status.assigned,
      running: status.running,
      standby: status.standby,
      standbyLagRecords: status.standbyLagRecords,
      restoredRecords: status.restoredRecords,
      stopped: status.stopped.map((s) => ({ topic: s.topic, partition: s.partition, code: s.code, reason: s.reason })),
      brokerUnavailable: streams.brokerHealth.unavailable().map((outage) => outage.component),
    },
    topology: own.topology,
    cluster: clusterView(
      streams.partitions,
      deps.directory.instances(),
      { ...status, instanceId: config.instanceId },
      lag,
    ),
    flow: { intervalMs: SAMPLE_INTERVAL_MS, samples: own.flow.samples(), sink: sink ? sink.status() : null },
    deadLetters: {
      topic: config.topics.dlq,
      tailing: dlq.tailing,
      records: dlq.records,
      sinkRejects,
      sinkRejectsError,
    },
  };
}
