// What a bench run brings up and tears down: a unique app id and topics, a fresh migrated database, a
// state folder, child processes of the real CLI (engine, sink, baseline) with their logs, and the facts
// about the machine the results depend on.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Admin } from '@platformatic/kafka';
import pg from 'pg';
import { type Config, loadConfig } from '../src/config/config.ts';
import { ensureTopics } from '../src/ops/topics.ts';
import { migrate } from '../src/sinks/migrate.ts';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(REPO_ROOT, 'src', 'cli', 'main.ts');

export interface BenchEnvironment {
  prefix: string;
  env: Record<string, string>;
  config: Config;
  workDir: string;
  stateDir: string;
  logDir: string;
  baselineTopics: { completed: string; failed: string };
}

export interface EnvironmentOptions {
  brokers: string[];
  postgresUrl: string;
  partitions: number;
  commitIntervalMs: number;
  batchRecordsMax: number;
  commitWhenCaughtUp: boolean;
  fetchMaxWaitMs: number;
  fetchMinBytes: number;
  httpPort: number;
  workDir: string;
}

/** Names everything after a fresh prefix, creates the topics and the migrated database. */
export async function prepareEnvironment(options: EnvironmentOptions): Promise<BenchEnvironment> {
  const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 12);
  const prefix = `bench${stamp}${Math.random().toString(36).slice(2, 6)}`;
  const databaseUrl = new URL(options.postgresUrl);
  databaseUrl.pathname = `/bankstream_${prefix}`;
  const stateDir = path.join(options.workDir, 'state');
  const logDir = path.join(options.workDir, 'logs');
  await mkdir(stateDir, { recursive: true });
  await mkdir(logDir, { recursive: true });
  const env: Record<string, string> = {
    APP_ID: prefix,
    INSTANCE_ID: 'bench-0',
    KAFKA_BROKERS: options.brokers.join(','),
    PARTITIONS: String(options.partitions),
    TOPIC_INPUT: `${prefix}-transaction_initiated`,
    TOPIC_COMPLETED: `${prefix}-transaction_completed`,
    TOPIC_FAILED: `${prefix}-transaction_failed`,
    TOPIC_AUDIT: `${prefix}-audit_log`,
    TOPIC_DLQ: `${prefix}-transaction_initiated.dlq`,
    DATABASE_URL: databaseUrl.toString(),
    STATE_DIR: stateDir,
    COMMIT_INTERVAL_MS: String(options.commitIntervalMs),
    BATCH_RECORDS_MAX: String(options.batchRecordsMax),
    COMMIT_WHEN_CAUGHT_UP: String(options.commitWhenCaughtUp),
    FETCH_MAX_WAIT_MS: String(options.fetchMaxWaitMs),
    FETCH_MIN_BYTES: String(options.fetchMinBytes),
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: String(options.httpPort),
    LOG_LEVEL: 'info',
    // Dev-mode API tokens signed with a secret the bench knows too (bench/phases/api.ts).
    AUTH_DEV_SECRET: randomBytes(32).toString('hex'),
    // The processor signs its internal legs and changelog records with it (required).
    CLUSTER_SECRET: randomBytes(32).toString('hex'),
  };
  const config = loadConfig(env);
  await ensureTopics(config);
  const baselineTopics = { completed: `${prefix}-baseline-completed`, failed: `${prefix}-baseline-failed` };
  await createPlainTopics(config.kafkaBrokers, [baselineTopics.completed, baselineTopics.failed], options.partitions);
  await migrate({ databaseUrl: config.databaseUrl });
  return { prefix, env, config, workDir: options.workDir, stateDir, logDir, baselineTopics };
}

/** Deletes the run's topics, database and folders. */
export async function teardownEnvironment(bench: BenchEnvironment, keepWorkDir: boolean): Promise<void> {
  const admin = new Admin({
    clientId: 'bankstream-bench-admin',
    bootstrapBrokers: bench.config.kafkaBrokers,
    timeout: 30_000,
  });
  try {
    const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(bench.prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics });
    // The run's consumer groups (engine, sink, baseline) are empty by now; a busy one is left alone.
    const groups = [...(await admin.listGroups()).keys()].filter((group) => group.startsWith(bench.prefix));
    if (groups.length > 0) await admin.deleteGroups({ groups }).catch(() => undefined);
  } finally {
    await admin.close();
  }
  const server = new URL(bench.config.databaseUrl);
  const name = server.pathname.slice(1);
  server.pathname = '/postgres';
  const client = new pg.Client({ connectionString: server.toString() });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
  if (!keepWorkDir) await rm(bench.workDir, { recursive: true, force: true });
}

async function createPlainTopics(brokers: string[], topics: string[], partitions: number): Promise<void> {
  const admin = new Admin({ clientId: 'bankstream-bench-admin', bootstrapBrokers: brokers, timeout: 30_000 });
  try {
    await admin.createTopics({ topics, partitions, replicas: 1 });
  } finally {
    await admin.close();
  }
}

// ---- child processes ------------------------------------------------------------------------

export interface BenchChild {
  readonly name: string;
  readonly process: ChildProcess;
  readonly logFile: string;
  readonly exited: Promise<number | null>;
  /** Resolves when a line of output contains `text` (bounded by timeoutMs). */
  waitForOutput(text: string, timeoutMs: number): Promise<void>;
  /** Throws when the process has exited (a phase measuring it must not wait for nothing). */
  assertRunning(): void;
  /** CPU seconds (user + system) used so far, from /proc; undefined off Linux. */
  cpuSeconds(): number | undefined;
  /** SIGTERM, then SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<number | null>;
  /** The last 64 KiB of its output (stdout and stderr). */
  output(): string;
}

const running = new Set<BenchChild>();

/** Runs `node <script> ...args` with the run's environment, its output in <logDir>/<name>.log. */
export function spawnNode(
  bench: BenchEnvironment,
  name: string,
  script: string,
  args: string[],
  options: { nodeArgs?: string[]; env?: Record<string, string> } = {},
): BenchChild {
  const logFile = path.join(bench.logDir, `${name}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(
    process.execPath,
    ['--disable-warning=ExperimentalWarning', ...(options.nodeArgs ?? []), script, ...args],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, ...bench.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const waiters: Array<{ text: string; resolve: () => void }> = [];
  let tail = '';
  const onData = (chunk: Buffer) => {
    log.write(chunk);
    tail = (tail + chunk.toString('utf8')).slice(-64 * 1024);
    for (const waiter of [...waiters]) {
      if (tail.includes(waiter.text)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const handle: BenchChild = {
    name,
    process: child,
    logFile,
    exited,
    waitForOutput(text, timeoutMs) {
      if (tail.includes(text)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${name}: no "${text}" in its output after ${timeoutMs} ms (see ${logFile})`)),
          timeoutMs,
        );
        waiters.push({ text, resolve: () => (clearTimeout(timer), resolve()) });
        void exited.then((code) => reject(new Error(`${name} exited with ${code} before "${text}" (see ${logFile})`)));
      });
    },
    assertRunning() {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}); see ${logFile}`);
    },
    cpuSeconds: () => processCpuSeconds(child.pid),
    output: () => tail,
    async stop(graceMs = 30_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      running.delete(handle);
      log.end();
      return child.exitCode;
    },
  };
  running.add(handle);
  return handle;
}

/** `bankstream <args>` as a child process. */
export function spawnCli(
  bench: BenchEnvironment,
  name: string,
  args: string[],
  nodeArgs: string[] = [],
  env?: Record<string, string>,
): BenchChild {
  // BENCH_ENGINE_NODE_FLAGS: node flags for every engine child (`--trace-gc`, `--max-semi-space-size=64`),
  // for experiments; node refuses some of them in NODE_OPTIONS, and NODE_OPTIONS would reach every process.
  const engineFlags = name.startsWith('engine') ? (process.env['BENCH_ENGINE_NODE_FLAGS'] ?? '').split(' ') : [];
  return spawnNode(bench, name, CLI, args, { nodeArgs: [...nodeArgs, ...engineFlags.filter(Boolean)], env });
}

/** Kills whatever child is still running (after an error). */
export async function killChildren(): Promise<void> {
  for (const child of [...running]) await child.stop(2000);
}

/** CPU seconds (user + system) a process has used, from /proc; undefined when unknown. */
export function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100;
  } catch {
    return undefined;
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

// ---- machine --------------------------------------------------------------------------------

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  platform: string;
  kernel: string;
  node: string;
  kafka: string;
  postgres: string;
  hostname: string;
}

export async function machineInfo(postgresUrl: string): Promise<MachineInfo> {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    platform: `${os.platform()}-${os.arch()}`,
    kernel: os.release(),
    node: process.versions.node,
    kafka: kafkaVersion(),
    postgres: await postgresVersion(postgresUrl),
    hostname: os.hostname(),
  };
}

/** The pid of the local broker started by scripts/kafka.sh, when it runs on this machine. */
export function localBrokerPid(): number | undefined {
  const home = process.env.BANKSTREAM_HOME ?? path.join(os.homedir(), '.bankstream');
  const pidFile = path.join(home, 'kafka-data', process.env.KAFKA_PORT ?? '9092', 'kafka.pid');
  try {
    return existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : undefined;
  } catch {
    return undefined;
  }
}

/** The broker's version from the jars of the local broker (scripts/kafka.sh), else KAFKA_VERSION, else unknown. */
function kafkaVersion(): string {
  try {
    const pid = localBrokerPid();
    const match =
      pid === undefined ? null : /kafka-([0-9][0-9A-Za-z.-]*)\/libs/.exec(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
    if (match) return match[1]!;
  } catch {
    // Not the local broker, or not Linux: fall through.
  }
  return process.env.KAFKA_VERSION ?? 'unknown';
}

async function postgresVersion(url: string): Promise<string> {
  const server = new URL(url);
  server.pathname = '/postgres';
  const client = new pg.Client({ connectionString: server.toString() });
  try {
    await client.connect();
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    return rows[0]?.server_version ?? 'unknown';
  } catch {
    return 'unknown';
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A short slug of the machine for result file names: "2c-amd-epyc-7b13". */
export function machineSlug(machine: MachineInfo): string {
  const model = machine.cpuModel
    .toLowerCase()
    .replace(/\(r\)|\(tm\)|cpu|processor|@.*$|\d+-core/g, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 40);
  return `${machine.cores}c-${model || 'cpu'}`;
}
