// The bank pipeline for reconcile and sink crash tests: unique topics, database and state folder per
// test, a mixed command workload (valid and invalid) sent by an independent KafkaJS producer with its
// Java-compatible default partitioner, the processor in-process and the sink in-process or as a child.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { type Instance, startInstance } from '../../../src/app/instance.ts';
import { type Config, loadConfig } from '../../../src/config/config.ts';
import { createLogger } from '../../../src/config/logger.ts';
import { ensureTopics } from '../../../src/ops/topics.ts';
import { migrate } from '../../../src/sinks/migrate.ts';
import { deleteTopicsWithPrefix, prefixedEnv, uniquePrefix } from '../support/kafka.ts';
import { POSTGRES_SERVER_URL, dropDatabase, uniqueDatabaseUrl } from '../support/postgres.ts';

export const PARTITIONS = 4;
const ROOT = path.resolve(import.meta.dirname, '../../..');
export const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

export interface Pipeline {
  config: Config;
  env: Record<string, string>;
  /** Removes the topics, the database and the state folder; safe to call twice. */
  cleanup(): Promise<void>;
}

export interface PipelineOptions {
  /**
   * The PostgreSQL server the test database goes on (a `postgres://.../postgres` URL); default the
   * machine's (TEST_POSTGRES_URL). A test that stops its server passes a private one here.
   */
  postgresServerUrl?: string;
}

export async function setUpPipeline(
  label: string,
  extraEnv: Record<string, string> = {},
  options: PipelineOptions = {},
): Promise<Pipeline> {
  const prefix = uniquePrefix(label);
  const serverUrl = options.postgresServerUrl ?? POSTGRES_SERVER_URL;
  const databaseUrl = uniqueDatabaseUrl(label, serverUrl);
  const stateDir = await mkdtemp(path.join(tmpdir(), `bankstream-${label}-`));
  const env = prefixedEnv(prefix, {
    PARTITIONS: String(PARTITIONS),
    DATABASE_URL: databaseUrl,
    STATE_DIR: stateDir,
    INSTANCE_ID: 'i0',
    COMMIT_INTERVAL_MS: '100',
    SINK_BATCH_ROWS_MAX: '200',
    SINK_BATCH_MS: '50',
    LOG_LEVEL: 'warn',
    ...extraEnv,
  });
  const cleanup = async () => {
    await deleteTopicsWithPrefix(prefix).catch(() => undefined);
    await dropDatabase(databaseUrl, serverUrl).catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  };
  try {
    const config = loadConfig(env);
    await ensureTopics(config);
    await migrate({ databaseUrl });
    return { config, env, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

export function startProcessor(config: Config, sink: boolean): Promise<Instance> {
  return startInstance({ config, logger, sink });
}

export interface Command {
  key: string | null;
  value: Buffer;
}

export interface Workload {
  /** Commands in the order they are sent; `setup` first (opens and funds accounts). */
  setup: Command[];
  commands: Command[];
  /** transferIds that must get exactly one outcome (completed or failed). */
  transferIds: Set<string>;
  /** Conflicting duplicates: each gets one idempotency_conflict record. */
  conflicts: number;
  accounts: string[];
}

/** A small deterministic PRNG (mulberry32): a failing run can be replayed with its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

/**
 * `count` mixed commands over `accountCount` funded EUR accounts: transfers, deposits, withdrawals (some
 * overdrawing), and invalid ones (unknown or closed account, currency mismatch, same account, zero or
 * numeric amount, not JSON), exact and conflicting duplicates, account commands that are refused.
 */
export function buildWorkload(prefix: string, count: number, seed: number, accountCount = 24): Workload {
  const rnd = random(seed);
  const eur = Array.from({ length: accountCount }, (_, i) => `${prefix}-acc-${i}`);
  const [usd, empty, closed] = [`${prefix}-usd`, `${prefix}-empty`, `${prefix}-closed`];
  const workload: Workload = {
    setup: [],
    commands: [],
    transferIds: new Set(),
    conflicts: 0,
    accounts: [...eur, usd, empty, closed],
  };
  for (const id of workload.accounts) {
    workload.setup.push({
      key: id,
      value: json({
        type: 'open_account',
        accountId: id,
        ownerId: `owner-${id}`,
        currency: id === usd ? 'USD' : 'EUR',
        overdraftLimit: '0.00',
      }),
    });
  }
  workload.setup.push({ key: closed, value: json({ type: 'close_account', accountId: closed }) });
  for (const id of [...eur, usd])
    money(
      workload,
      {
        type: 'deposit',
        transferId: `${prefix}-seed-${id}`,
        accountId: id,
        amount: '500.00',
        currency: id === usd ? 'USD' : 'EUR',
      },
      workload.setup,
    );
  const sent: Array<Record<string, unknown>> = [];
  for (let i = 0; i < count; i++) nextCommand(workload, { prefix, i, rnd, eur, usd, closed, sent });
  return workload;
}

interface Draw {
  prefix: string;
  i: number;
  rnd: () => number;
  eur: string[];
  usd: string;
  closed: string;
  sent: Array<Record<string, unknown>>;
}

function nextCommand(workload: Workload, draw: Draw): void {
  const { prefix, i, rnd, eur, usd, closed, sent } = draw;
  const pick = () => eur[Math.floor(rnd() * eur.length)]!;
  const amount = `${1 + Math.floor(rnd() * 60)}.${String(Math.floor(rnd() * 100)).padStart(2, '0')}`;
  const transferId = `${prefix}-t-${i}`;
  const from = pick();
  const other = pick();
  const to = other === from ? eur[(eur.indexOf(from) + 1) % eur.length]! : other;
  const transfer = { type: 'transfer', transferId, from, to, amount, currency: 'EUR' };
  const roll = rnd();
  if (roll < 0.4) money(workload, transfer, workload.commands, sent);
  else if (roll < 0.52)
    money(workload, { type: 'deposit', transferId, accountId: from, amount, currency: 'EUR' }, workload.commands, sent);
  else if (roll < 0.66)
    money(
      workload,
      {
        type: 'withdrawal',
        transferId,
        accountId: from,
        amount: `${Number.parseInt(amount, 10) * 3}.00`,
        currency: 'EUR',
      },
      workload.commands,
      sent,
    );
  else if (roll < 0.69) money(workload, { ...transfer, to: usd }, workload.commands);
  else if (roll < 0.71) money(workload, { ...transfer, to: `${prefix}-nobody` }, workload.commands);
  else if (roll < 0.73) money(workload, { ...transfer, to: closed }, workload.commands);
  else if (roll < 0.75) money(workload, { ...transfer, to: from }, workload.commands);
  else if (roll < 0.77) money(workload, { ...transfer, amount: '0.00' }, workload.commands);
  else if (roll < 0.79) money(workload, { ...transfer, amount: 12.5 }, workload.commands);
  else if (roll < 0.81)
    money(
      workload,
      { type: 'deposit', transferId, accountId: `${prefix}-nobody`, amount, currency: 'EUR' },
      workload.commands,
    );
  else if (roll < 0.83)
    workload.commands.push({ key: from, value: Buffer.from(`{"type":"transfer","transferId":"${transferId}",`) });
  else if (roll < 0.84)
    workload.commands.push({
      key: from,
      value: json({ type: 'open_account', accountId: from, ownerId: 'x', currency: 'EUR' }),
    });
  else if (roll < 0.85) workload.commands.push({ key: from, value: json({ type: 'close_account', accountId: from }) });
  else if (roll < 0.93 && sent.length > 0) duplicate(workload, sent[Math.floor(rnd() * sent.length)]!);
  else if (sent.length > 0) conflict(workload, sent[Math.floor(rnd() * sent.length)]!, i);
  else money(workload, transfer, workload.commands, sent);
}

/** A money command: one outcome is owed for its transferId. */
function money(
  workload: Workload,
  value: Record<string, unknown>,
  into: Command[],
  sent?: Array<Record<string, unknown>>,
): void {
  const key = (value.type === 'transfer' ? value.from : value.accountId) as string;
  into.push({ key, value: json(value) });
  workload.transferIds.add(value.transferId as string);
  sent?.push(value);
}

/** The same command again: no second outcome. */
function duplicate(workload: Workload, value: Record<string, unknown>): void {
  workload.commands.push({ key: (value.from ?? value.accountId) as string, value: json(value) });
}

/** The same transferId with another amount (unique per conflict, so none is an exact repeat): one idempotency_conflict. */
function conflict(workload: Workload, value: Record<string, unknown>, i: number): void {
  workload.commands.push({
    key: (value.from ?? value.accountId) as string,
    value: json({ ...value, amount: `${900_000 + i}.00` }),
  });
  workload.conflicts++;
}

/** Sends in order, 500 per request, with KafkaJS's default (Java-compatible murmur2) partitioner. */
export async function sendCommands(config: Config, commands: Command[], pauseMs = 0): Promise<void> {
  const kafka = new Kafka({ clientId: 'upstream', brokers: config.kafkaBrokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  try {
    for (let i = 0; i < commands.length; i += 500) {
      await producer.send({
        topic: config.topics.input,
        acks: -1,
        messages: commands.slice(i, i + 500).map((c) => ({ key: c.key, value: c.value })),
      });
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  } finally {
    await producer.disconnect();
  }
}

/** `node src/cli/main.ts <args>` with the test's configuration in its environment. */
export function runCli(env: Record<string, string>, args: string[], stdio: 'pipe' | 'ignore' = 'ignore'): ChildProcess {
  return spawn(
    process.execPath,
    ['--disable-warning=ExperimentalWarning', path.join(ROOT, 'src/cli/main.ts'), ...args],
    {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', stdio, stdio === 'pipe' ? 'pipe' : 'inherit'],
    },
  );
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export function exited(child: ChildProcess): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Sends `signal` and waits for the exit; SIGKILL after `graceMs` so no child outlives its test. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs = 20_000): Promise<Exit> {
  const exit = exited(child);
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  try {
    return await exit;
  } finally {
    clearTimeout(timer);
  }
}
