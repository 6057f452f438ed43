// The HTTP API of one instance: builds its parts (buildDeps), mounts the routes on Koa, listens, and stops
// in order. Some parts live outside http/, in rooms named for what they are: the outcome tracker
// (src/tails/outcomes.ts), the instance directory (src/cluster/directory.ts), the command producer
// (src/commands/sender.ts).
//   start: cluster keys required → decoy password hash → listen (API port, then the management port) →
//          the advertised URL (with the real port when HTTP_PORT=0) → outcome tail → instance directory
//          (its tail, then publish now and on every streams status change); an abort or a failure
//          meanwhile stops whatever started.
//   close: end SSE streams → stop accepting (in-flight requests get CLOSE_GRACE_MS) → withdraw this
//          instance from the directory → stop the outcome tail, the command producer and the read
//          model's pool (each one is stopped; the first error is rethrown at the end).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Router } from '@koa/router';
import Koa from 'koa';
import type { Logger } from 'pino';
import { type Config, requireClusterKeys } from '../config/config.ts';
import type { StreamsView } from '../streams/status.ts';
import type { PostgresSink } from '../sinks/postgres-sink.ts';
import { AccountQueries } from './accounts.ts';
import { Authenticator } from './auth.ts';
import { CommandSender } from '../commands/sender.ts';
import type { ApiDeps } from './context.ts';
import { ReadModel } from './history.ts';
import { InstanceDirectory } from '../cluster/directory.ts';
import { LoginThrottle } from './login-throttle.ts';
import { prepareDecoy } from './passwords.ts';
import { PrincipalQuotas } from './quotas.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { errorHandler, requestContext } from './middleware.ts';
import { withAccountReadFastPath } from './fast-read.ts';
import { OutcomeTracker } from '../tails/outcomes.ts';
import { strictPathEncoding } from './path-encoding.ts';
import { accountReadRoute, accountRoutes } from './routes/accounts.ts';
import { closeConsole, consoleRoutes } from './routes/console.ts';
import { managementRoutes, systemRoutes } from './routes/system.ts';
import { holdRoutes } from './routes/holds.ts';
import { transferRoutes } from './routes/transfers.ts';
import { SseHub } from './sse.ts';

export interface ApiServerOptions {
  config: Config;
  logger: Logger;
  streams: StreamsView;
  sink: PostgresSink | undefined;
  metrics: Metrics;
  /** Aborted to stop while starting: the tails wait for the broker as long as it is down. */
  signal?: AbortSignal;
}

// Slow or stalled clients must not hold sockets forever while sending a request.
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
const CLOSE_GRACE_MS = 5_000;

export class ApiServer {
  readonly #deps: ApiDeps;
  readonly #servers: Servers;
  readonly #unsubscribe: () => void;
  #closed: Promise<void> | undefined;

  private constructor(deps: ApiDeps, servers: Servers, unsubscribe: () => void) {
    this.#deps = deps;
    this.#servers = servers;
    this.#unsubscribe = unsubscribe;
  }

  /** The management listener's URL (MANAGEMENT_PORT), or undefined when there is none. */
  get managementUrl(): string | undefined {
    const server = this.#servers.management;
    if (!server) return undefined;
    const { port } = server.address() as AddressInfo;
    const host = this.#deps.config.management!.host;
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  /** The URL other instances and clients use (ADVERTISED_URL, with the real port when HTTP_PORT=0). */
  get url(): string {
    return this.#deps.selfUrl();
  }

  static async start(options: ApiServerOptions): Promise<ApiServer> {
    // Directory records and instance-to-instance calls are authenticated with it: no API without it.
    requireClusterKeys(options.config.clusterKeys, 'the HTTP API');
    // Built before the first login, so that an unknown user's first login costs what every later one does.
    await prepareDecoy();
    const { deps, setSelfUrl } = buildDeps(options);
    const serverOptions = {
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    };
    const servers: Servers = {
      api: http.createServer(serverOptions, withAccountReadFastPath(deps, createApp(deps).callback())),
    };
    if (options.config.management)
      servers.management = http.createServer(serverOptions, createManagementApp(deps).callback());
    const server = servers.api;
    let unsubscribe = () => {};
    const onAbort = () => void stopParts(deps, servers).catch(() => undefined);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await listen(server, options.config.httpHost, options.config.httpPort);
      if (servers.management)
        await listen(servers.management, options.config.management!.host, options.config.management!.port);
      setSelfUrl(advertisedUrl(options.config, server));
      await deps.tracker.start();
      await deps.directory.start();
      const listener = (status: Parameters<InstanceDirectory['publish']>[0]) => deps.directory.publish(status);
      const remove = options.streams.onStatus(listener);
      unsubscribe = () => void remove();
      deps.directory.publish(options.streams.status());
    } catch (error) {
      await stopParts(deps, servers).catch(() => undefined);
      throw error;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    const api = new ApiServer(deps, servers, unsubscribe);
    options.logger.info(
      { url: deps.selfUrl(), management: api.managementUrl ?? null, auth: options.config.auth.mode },
      'HTTP API listening',
    );
    return api;
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#unsubscribe();
      await stopParts(this.#deps, this.#servers);
    })();
    return this.#closed;
  }
}

function buildDeps(options: ApiServerOptions): { deps: ApiDeps; setSelfUrl(url: string): void } {
  const { config, logger, streams, sink, metrics } = options;
  const log = logger.child({ component: 'http' });
  let selfUrl = config.advertisedUrl;
  const urlOf = () => selfUrl;
  const tracker = new OutcomeTracker(config, log, metrics, streams.brokerHealth);
  const directory = new InstanceDirectory({
    config,
    logger: log,
    metrics,
    url: urlOf,
    localGeneration: () => streams.status().generationId,
    brokerHealth: streams.brokerHealth,
  });
  const quotas = new PrincipalQuotas(config.http, metrics);
  const deps: ApiDeps = {
    config,
    logger: log,
    streams,
    sink,
    metrics,
    authenticator: new Authenticator(config.auth, log),
    sender: new CommandSender(config),
    tracker,
    directory,
    queries: new AccountQueries({ config, streams, directory, metrics, selfUrl: urlOf }),
    readModel: new ReadModel(config, log, metrics),
    sse: new SseHub(config, tracker, metrics, quotas),
    quotas,
    logins: new LoginThrottle(config.http, metrics),
    selfUrl: urlOf,
  };
  return { deps, setSelfUrl: (url) => (selfUrl = url) };
}

interface Servers {
  api: http.Server;
  management?: http.Server;
}

export function createApp(deps: ApiDeps): Koa {
  // The client address (login throttling) is the socket's, or with HTTP_TRUST_PROXY_HOPS that many proxies' X-Forwarded-For.
  const hops = deps.config.trustProxyHops;
  const app = new Koa({ proxy: hops > 0, maxIpsCount: hops, env: 'production' });
  // Errors are answered and logged by errorHandler; what reaches Koa's own handler (a client that went
  // away mid-response) needs no stack trace on stderr.
  app.silent = true;
  app.on('error', (error: Error) => deps.logger.debug({ err: error }, 'response error'));
  const router = new Router({ sensitive: true, strict: false });
  systemRoutes(router, deps);
  accountRoutes(router, deps);
  transferRoutes(router, deps);
  holdRoutes(router, deps);
  consoleRoutes(router, deps);
  app.use(requestContext(deps.logger, deps.metrics));
  app.use(errorHandler());
  app.use(strictPathEncoding());
  app.use(accountReadRoute(deps));
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  return app;
}

/** The management listener's app: health, readiness with details and metrics, no token. */
export function createManagementApp(deps: ApiDeps): Koa {
  const app = new Koa({ proxy: false, env: 'production' });
  app.silent = true;
  const router = new Router({ sensitive: true, strict: false });
  managementRoutes(router, deps);
  app.use(requestContext(deps.logger, deps.metrics));
  app.use(errorHandler());
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  return app;
}

/** ADVERTISED_URL, with the port the server got when it asked for port 0 (tests, several local instances). */
function advertisedUrl(config: Config, server: http.Server): string {
  const url = new URL(config.advertisedUrl);
  if (url.port !== '0') return config.advertisedUrl;
  url.port = String((server.address() as AddressInfo).port);
  return url.toString().replace(/\/$/, '');
}

function listen(server: http.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function stopParts(deps: ApiDeps, servers: Servers): Promise<void> {
  deps.sse.closeAll();
  await Promise.all([closeServer(servers.api), servers.management ? closeServer(servers.management) : undefined]);
  let first: unknown;
  for (const stop of [
    () => closeConsole(deps),
    () => deps.directory.close(),
    () => deps.tracker.close(),
    () => deps.sender.close(),
    () => deps.readModel.close(),
  ]) {
    try {
      await stop();
    } catch (error) {
      first ??= error;
    }
  }
  if (first) throw first;
}

/** Stops accepting, lets in-flight requests finish for a bounded time, then cuts what is left. */
async function closeServer(server: http.Server): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
  await closed;
  clearTimeout(timer);
}
