// The HTTP API of one instance: builds its parts, mounts the routes on Koa, listens, and stops in order.
//   start: read model pool → outcome tail → instance directory (tail + publish on every status change) → listen
//   close: end SSE streams and stop accepting → withdraw this instance from the directory → stop tails,
//          producers and the pool
import http from 'node:http';
import { type AddressInfo } from 'node:net';
import { Router } from '@koa/router';
import Koa from 'koa';
import { type Logger } from 'pino';
import { type Config } from '../config/config.ts';
import { type KafkaStreams } from '../runtime/kafka-streams.ts';
import { type PostgresSink } from '../sinks/postgres-sink.ts';
import { AccountQueries } from './accounts.ts';
import { Authenticator } from './auth.ts';
import { CommandSender } from './commands.ts';
import { type ApiDeps } from './context.ts';
import { ReadModel } from './history.ts';
import { InstanceDirectory } from './instances.ts';
import { type Metrics } from './metrics.ts';
import { errorHandler, requestContext } from './middleware.ts';
import { OutcomeTracker } from './outcomes.ts';
import { accountRoutes } from './routes/accounts.ts';
import { systemRoutes } from './routes/system.ts';
import { transferRoutes } from './routes/transfers.ts';
import { SseHub } from './sse.ts';

export interface ApiServerOptions {
  config: Config;
  logger: Logger;
  streams: KafkaStreams;
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
  readonly #server: http.Server;
  readonly #unsubscribe: () => void;
  #closed: Promise<void> | undefined;

  private constructor(deps: ApiDeps, server: http.Server, unsubscribe: () => void) {
    this.#deps = deps;
    this.#server = server;
    this.#unsubscribe = unsubscribe;
  }

  /** The URL other instances and clients use (ADVERTISED_URL, with the real port when HTTP_PORT=0). */
  get url(): string {
    return this.#deps.selfUrl();
  }

  static async start(options: ApiServerOptions): Promise<ApiServer> {
    const { deps, setSelfUrl } = buildDeps(options);
    const server = http.createServer({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, createApp(deps).callback());
    let unsubscribe = () => {};
    const onAbort = () => void stopParts(deps, server).catch(() => undefined);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await listen(server, options.config.httpHost, options.config.httpPort);
      setSelfUrl(advertisedUrl(options.config, server));
      await deps.tracker.start();
      await deps.directory.start();
      const listener = (status: Parameters<InstanceDirectory['publish']>[0]) => deps.directory.publish(status);
      const remove = options.streams.onStatus(listener);
      unsubscribe = () => void remove();
      deps.directory.publish(options.streams.status());
    } catch (error) {
      await stopParts(deps, server).catch(() => undefined);
      throw error;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    options.logger.info({ url: deps.selfUrl(), auth: options.config.auth.mode }, 'HTTP API listening');
    return new ApiServer(deps, server, unsubscribe);
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#unsubscribe();
      await stopParts(this.#deps, this.#server);
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
  const directory = new InstanceDirectory(config, log, urlOf, streams.brokerHealth);
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
    readModel: new ReadModel(config, log),
    sse: new SseHub(config, tracker, metrics),
    selfUrl: urlOf,
  };
  return { deps, setSelfUrl: (url) => (selfUrl = url) };
}

export function createApp(deps: ApiDeps): Koa {
  const app = new Koa({ proxy: false, env: 'production' });
  // Errors are answered and logged by errorHandler; what reaches Koa's own handler (a client that went
  // away mid-response) needs no stack trace on stderr.
  app.silent = true;
  app.on('error', (error: Error) => deps.logger.debug({ err: error }, 'response error'));
  const router = new Router({ sensitive: true, strict: false });
  systemRoutes(router, deps);
  accountRoutes(router, deps);
  transferRoutes(router, deps);
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

async function stopParts(deps: ApiDeps, server: http.Server): Promise<void> {
  deps.sse.closeAll();
  await closeServer(server);
  let first: unknown;
  for (const stop of [() => deps.directory.close(), () => deps.tracker.close(), () => deps.sender.close(), () => deps.readModel.close()]) {
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
