// `bankstream dev`: the whole local stack in one process — broker, database, schema, topics, one
// instance (processor + sink + API), demo data and a light load — and a stop that undoes exactly
// what this run started, in reverse order, whatever failed on the way.
//
// Start, in order (each step registers how to undo itself before the next one runs):
//   1. Kafka: the configured brokers if they answer, else scripts/kafka.sh start (stopped on exit);
//   2. PostgreSQL: DATABASE_URL (default the local server) if it answers, else an embedded server in
//      <home>/pg (stopped on exit);
//   3. migrate, create topics;
//   4. startInstance (processor, sink, and the API where this build has it), wait until its tasks run;
//   5. seed the demo users and accounts, wait until the accounts' outcomes are in PostgreSQL;
//   6. the API check and token, the light load.
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino, { type Logger } from 'pino';
import { type Instance, startInstance } from '../app/instance.ts';
import { type Config, loadConfig } from '../config/config.ts';
import { kafkaConnectionOptions } from '../kafka/security.ts';
import { ensureTopics } from '../ops/topics.ts';
import type { StreamsStatus } from '../streams/status.ts';
import { migrate } from '../sinks/migrate.ts';
import { type ApiAccess, describeApi, devAuthSecret, devClusterSecret } from './api.ts';
import { DEMO_ACCOUNTS, seedCommands, seedUsers, sendCommands, startLightLoad, waitForSeed } from './demo.ts';
import { embeddedPostgresRunning, startEmbeddedPostgres } from './embedded-postgres.ts';
import { brokersAnswer, localBrokerPort, startLocalKafka } from './kafka.ts';
import { databaseName, probePostgres, redact } from './postgres.ts';
import { DevAbortedError, type DevReporter } from './process.ts';

export { DevAbortedError };

export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

type Env = Record<string, string | undefined>;

export interface DevOptions {
  /** Dev folder: embedded PostgreSQL (pg/), instance state (state/) unless STATE_DIR is set. */
  home: string;
  /** Use the embedded PostgreSQL even when DATABASE_URL answers. */
  embeddedPostgres: boolean;
  /** Delete <home>/pg and <home>/state first. */
  reset: boolean;
  seed: boolean;
  /** Light load, commands per second; 0 = none. */
  loadRate: number;
  readyTimeoutMs: number;
  env: Env;
  reporter: DevReporter;
}

export interface DevSummary {
  config: Config;
  kafka: { brokers: string[]; startedHere: boolean };
  postgres: { url: string; embedded: boolean; dataDir?: string; startedHere: boolean };
  api: ApiAccess;
  demo: Array<{ accountId: string; ownerId: string; balance: string; currency: string }>;
  loadRate: number;
  /** Where the generated CLUSTER_SECRET is kept, when this run generated or reused one (unset when the environment gave it). */
  clusterSecretFile: string | undefined;
}

interface Resource {
  name: string;
  stop(): Promise<void>;
  kill?(): void;
}

/** The default dev folder: $BANKSTREAM_HOME when set, else .bankstream/ in the project. */
export function defaultDevHome(env: Env): string {
  return env.BANKSTREAM_HOME ? path.resolve(env.BANKSTREAM_HOME) : path.join(PROJECT_ROOT, '.bankstream');
}

export class DevStack {
  readonly #options: DevOptions;
  readonly #resources: Resource[] = [];
  readonly #abort = new AbortController();
  #instance: Instance | undefined;
  #stopping: Promise<void> | undefined;

  constructor(options: DevOptions) {
    this.#options = options;
  }

  get options(): DevOptions {
    return this.#options;
  }

  /** The running instance (after start), for its fatal-error promise. */
  get instance(): Instance | undefined {
    return this.#instance;
  }

  /** Asks a start in progress to give up after its current step. */
  abort(): void {
    this.#abort.abort();
  }

  async start(): Promise<DevSummary> {
    const { options } = this;
    const env: Env = {
      ...options.env,
      LOG_LEVEL: options.env.LOG_LEVEL || 'warn',
      STATE_DIR: options.env.STATE_DIR || path.join(options.home, 'state'),
    };
    if (options.reset) await this.#reset(env);
    // Dev auth mode with a known secret, so that the token printed below verifies on the instance.
    if (!env.AUTH_JWKS_URL && !env.AUTH_DEV_SECRET) env.AUTH_DEV_SECRET = await devAuthSecret(options.home);
    // The processor refuses to start without a cluster secret: generate one once, keep it in the dev folder.
    let clusterSecretFile: string | undefined;
    if (!env.CLUSTER_SECRET && !env.CLUSTER_SECRET_FILE) {
      const generated = await devClusterSecret(options.home);
      env.CLUSTER_SECRET = generated.secret;
      clusterSecretFile = generated.file;
    }
    let config = loadConfig(env);
    const logger = devLogger(config);
    const kafka = await this.#kafka(config);
    this.#checkAborted();
    const postgres = await this.#postgres(config);
    // The embedded server speaks plain TCP on the loopback: TLS settings meant for DATABASE_URL do not apply.
    const tlsOff = postgres.embedded
      ? { PGSSLMODE: undefined, PGSSLROOTCERT: undefined, PGSSLCERT: undefined, PGSSLKEY: undefined }
      : {};
    config = loadConfig({ ...env, ...tlsOff, DATABASE_URL: postgres.url });
    this.#checkAborted();
    this.#note('applying migrations');
    await migrate({ databaseUrl: config.databaseUrl, postgresTls: config.postgresTls, logger });
    if (options.seed) await seedUsers(config);
    this.#note(`creating topics (${config.partitions} partitions)`);
    await ensureTopics(config, { logger });
    this.#checkAborted();
    const instance = await this.#startInstance(config, logger);
    await this.#waitUntilRunning(instance, options.readyTimeoutMs);
    const demo = options.seed ? await this.#seed(config) : [];
    const api = await describeApi(config, logger, options.reporter, options.seed);
    if (options.loadRate > 0) {
      const load = startLightLoad(config, options.loadRate, options.reporter);
      this.#resources.push({ name: 'demo load', stop: () => load.stop() });
    }
    return { config, kafka, postgres, api, demo, loadRate: options.loadRate, clusterSecretFile };
  }

  /** Stops what this run started, newest first; finishes the loop and rethrows the first error. */
  stop(): Promise<void> {
    this.#abort.abort();
    return (this.#stopping ??= (async () => {
      let first: unknown;
      while (this.#resources.length > 0) {
        const resource = this.#resources.pop()!;
        this.#note(`stopping ${resource.name}`);
        try {
          await resource.stop();
        } catch (error) {
          this.#note(`stopping ${resource.name} failed: ${(error as Error).message}`);
          first ??= error;
        }
      }
      if (first) throw first;
    })());
  }

  /** Last resort (second Ctrl-C): signals the child servers synchronously; nothing is awaited. */
  kill(): void {
    for (const resource of this.#resources) resource.kill?.();
  }

  #note(message: string): void {
    this.#options.reporter.note(message);
  }

  #checkAborted(): void {
    if (this.#abort.signal.aborted) throw new DevAbortedError();
  }

  async #reset(env: Env): Promise<void> {
    const home = path.resolve(this.#options.home);
    const targets = [path.join(home, 'pg'), path.resolve(env.STATE_DIR!)];
    const left = await embeddedPostgresRunning(path.join(home, 'pg'));
    if (left)
      throw new Error(
        `--reset: an embedded PostgreSQL still runs on ${path.join(home, 'pg')} (pid ${left.pid}); stop it first (kill -INT ${left.pid})`,
      );
    for (const target of targets) {
      this.#note(`--reset: deleting ${target}`);
      await rm(target, { recursive: true, force: true });
    }
  }

  async #kafka(config: Config): Promise<DevSummary['kafka']> {
    const brokers = config.kafkaBrokers;
    if (await brokersAnswer(brokers, kafkaConnectionOptions(config.kafkaSecurity, brokers))) {
      this.#note(`Kafka answers on ${brokers.join(',')}; using it (left running on exit)`);
      return { brokers, startedHere: false };
    }
    const port = localBrokerPort(brokers);
    if (port === undefined)
      throw new Error(
        `no Kafka broker answers on ${brokers.join(',')} (KAFKA_BROKERS); only a local broker (127.0.0.1:<port>) can be started here`,
      );
    const kafka = await startLocalKafka(PROJECT_ROOT, port, this.#options.reporter);
    this.#resources.push({ name: 'the local Kafka broker', stop: () => kafka.stop() });
    return { brokers, startedHere: true };
  }

  async #postgres(config: Config): Promise<DevSummary['postgres']> {
    if (!this.#options.embeddedPostgres) {
      const probe = await probePostgres(config.databaseUrl);
      if (probe.reachable) {
        this.#note(`PostgreSQL answers at ${redact(config.databaseUrl)}; using it`);
        return { url: config.databaseUrl, embedded: false, startedHere: false };
      }
      this.#note(`no PostgreSQL answers at ${redact(config.databaseUrl)} (${probe.reason}); using an embedded one`);
    }
    const toolCacheDir = this.#options.env.BANKSTREAM_HOME
      ? path.resolve(this.#options.env.BANKSTREAM_HOME)
      : path.join(os.homedir(), '.bankstream');
    const server = await startEmbeddedPostgres({
      dir: path.join(this.#options.home, 'pg'),
      toolCacheDir,
      localCacheDir: path.join(this.#options.home, 'tools'),
      reporter: this.#options.reporter,
    });
    if (server.owned)
      this.#resources.push({ name: 'the embedded PostgreSQL', stop: () => server.stop(), kill: () => server.kill() });
    return {
      url: server.urlFor(databaseName(config.databaseUrl)),
      embedded: true,
      dataDir: server.dataDir,
      startedHere: server.owned,
    };
  }

  async #startInstance(config: Config, logger: Logger): Promise<Instance> {
    this.#note(`starting instance ${config.instanceId} (processor, sink, API) with state in ${config.stateDir}`);
    const instance = await startInstance({ config, logger, sink: true, http: true });
    this.#instance = instance;
    this.#resources.push({ name: `instance ${config.instanceId}`, stop: () => instance.close() });
    return instance;
  }

  /** Until every assigned task is restored and running (the state /readyz reports), or the timeout. */
  async #waitUntilRunning(instance: Instance, timeoutMs: number): Promise<void> {
    const ready = (status: StreamsStatus) =>
      status.state === 'RUNNING' && status.assigned.length > 0 && status.running.length === status.assigned.length;
    let unsubscribe = () => {};
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `the instance's tasks were not running within ${timeoutMs / 1000} s (state ${instance.streams.state})`,
              ),
            ),
          timeoutMs,
        );
        const finish = (error?: Error) => {
          clearTimeout(timer);
          if (error) reject(error);
          else resolve();
        };
        const unlisten = instance.streams.onStatus((status) => ready(status) && finish());
        unsubscribe = () => void unlisten();
        this.#abort.signal.addEventListener('abort', () => finish(new DevAbortedError()), { once: true });
        instance.streams.done().then(
          () => finish(new Error('the stream processor stopped during start-up')),
          (error: unknown) => finish(error as Error),
        );
        if (ready(instance.streams.status())) finish();
      });
    } finally {
      unsubscribe();
    }
  }

  async #seed(config: Config): Promise<DevSummary['demo']> {
    this.#note(`seeding demo accounts ${DEMO_ACCOUNTS.map((a) => a.accountId).join(', ')}`);
    await sendCommands(config, seedCommands());
    const seed = await waitForSeed(config, this.#options.readyTimeoutMs, this.#abort.signal);
    return DEMO_ACCOUNTS.map((account) => ({
      accountId: account.accountId,
      ownerId: account.ownerId,
      currency: account.currency,
      balance: seed.balances.get(account.accountId) ?? '?',
    }));
  }
}

/** Engine and sink logs go to stderr (stdout carries the summary), at LOG_LEVEL (dev default warn). */
function devLogger(config: Config): Logger {
  return pino(
    { level: config.logLevel, base: { pid: process.pid, instance: config.instanceId } },
    pino.destination({ dest: 2, sync: true }),
  );
}
