// The bank test under faults: money is only ever moved, never created or destroyed, whatever fails.
// 2–3 processor instances and the Postgres sink run as child processes against a private broker and a
// private PostgreSQL; an independent KafkaJS producer sends a reproducible workload while faults are
// injected at seeded random moments: SIGKILL and SIGSTOP/SIGCONT of instances, SIGKILL of the sink,
// a broker restart, a long broker outage (30–60 s, beginning while an instance restarts into a rebalance
// and restores), a Postgres stop/start, scale up and down. Then everything is brought back, the system
// quiesces, and the checks run (see `check`). A process that exits without having been stopped on
// purpose fails the run (`unplannedExits`), even when the others take over its partitions.
import { appendFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { type Config, loadConfig } from '../../src/config/config.ts';
import { ensureTopics } from '../../src/ops/topics.ts';
import { migrate } from '../../src/sinks/migrate.ts';
import { type Child, killChild, spawnFixture } from '../helpers/child.ts';
import {
  decidedOutcomes,
  expectedOutcomeCount,
  type Observed,
  observe,
  PARTITIONS,
  pipelineViolations,
  quiet,
  sendWithKafkaJs,
} from '../integration/bank/pipeline.ts';
import { holdCounts, holdsSeen, resolveAnswers } from '../integration/bank/hold-checks.ts';
import { mixInHolds } from '../integration/bank/hold-workload.ts';
import { buildWorkload, random, type Workload, type WorkloadCommand } from '../integration/bank/workload.ts';
import { formatReport as formatReconcile } from '../../src/ops/reconcile/report.ts';
import { reconcile } from '../../src/ops/reconcile/reconcile.ts';
import { PrivateKafka, PrivatePostgres } from './services.ts';
import { TEST_CLUSTER_SECRET } from '../integration/support/kafka.ts';

export interface ChaosOptions {
  durationMs: number;
  seed: number;
  transfers: number;
  /** Holds mixed into the workload, each with what follows it (posts, voids, races, expiries; default transfers / 8). */
  holds?: number;
  accounts: number;
  kafkaPort: number;
  postgresPort: number;
  /** STANDBY_REPLICAS of the instances (default 0). */
  standbyReplicas?: number;
  /** Faults injected first, in this order, before random ones (the suite's short run covers each kind once). */
  schedule?: FaultKind[];
  /** How long a 'broker-outage' keeps the broker down: from, to (ms; default 30–60 s). */
  brokerOutageMs?: [number, number];
  /** When set, every child's output is written to `<logDir>/<name>-<pid>.log` when it ends. */
  logDir?: string;
  log: (line: string) => void;
}

export type FaultKind =
  | 'kill-instance'
  | 'pause-instance'
  | 'kill-sink'
  | 'postgres'
  | 'broker'
  | 'scale'
  | 'broker-outage';
export const FAULT_KINDS: FaultKind[] = [
  'kill-instance',
  'pause-instance',
  'kill-sink',
  'postgres',
  'broker',
  'scale',
  'broker-outage',
];
/** Cumulative weights of the random fault choice, in FAULT_KINDS order. */
const FAULT_WEIGHTS = [0.28, 0.46, 0.6, 0.7, 0.8, 0.92, 1];

export interface ChaosReport {
  seed: number;
  faults: string[];
  commands: number;
  /** Outcomes the commands are owed: one per distinct transferId (duplicates, opens and DLQ records owe none). */
  owed: number;
  outcomes: number;
  /** Placed holds by how they ended (posted, partial, voided, expired, pending before the deadline). */
  holds: Record<string, number>;
  /** How the posts and voids were answered (completed, or which failure code). */
  holdAnswers: Record<string, number>;
  /** The `bankstream reconcile` report of the quiet system. */
  reconcile: string;
  losses: number;
  duplicates: number;
  violations: string[];
  /** Processes that exited without being stopped on purpose (an instance giving up on the broker). */
  unplannedExits: string[];
}

const CLI = path.resolve('src/cli/main.ts');

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const kafka = new PrivateKafka(options.kafkaPort);
  const postgres = new PrivatePostgres(options.postgresPort);
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-chaos-'));
  const cluster = new Cluster(stateDir, options.logDir);
  try {
    options.log(`starting a private broker on ${kafka.brokers} and PostgreSQL on ${options.postgresPort}`);
    await Promise.all([kafka.startFresh(), postgres.init()]);
    const env = chaosEnv(options, kafka, postgres, stateDir);
    const config = loadConfig(env);
    await migrate({ databaseUrl: config.databaseUrl });
    await ensureTopics(config);
    cluster.env = env;
    const workload = buildWorkload({
      accounts: options.accounts,
      transfers: options.transfers,
      seed: options.seed,
      prefix: `c${options.seed}`,
    });
    const holds = options.holds ?? Math.round(options.transfers / 8);
    mixInHolds(workload.commands, {
      accounts: workload.accounts.filter((a) => !a.includes('-usd-')),
      holds,
      prefix: `c${options.seed}`,
      rnd: random(options.seed * 31 + 7),
      // The rate the commands are sent at (a hold brings about 1.2 posts or voids with it).
      perSecond: ((workload.commands.length + holds * 2.2) * 1000) / options.durationMs,
    });
    cluster.start('i0');
    cluster.start('i1');
    cluster.startSink();
    await sendReliably(config, workload.setup, options.log);
    await waitForOutcomes(config, workload.setup.filter((c) => c.expect.kind === 'outcome').length, 120_000);
    const faults = await underFaults(options, config, workload, cluster, kafka, postgres);
    options.log('faults over; bringing everything back and waiting for the system to quiesce');
    await cluster.restoreAll();
    const seen = await waitForOutcomes(config, expectedOutcomeCount(workload), 240_000);
    const violations = [...pipelineViolations(workload, seen), ...(await postgresViolations(config, seen, 180_000))];
    // The operator's check of the same quiet system: stores, outcome topics, Postgres, holds.
    const reconciled = await reconcile(config, { quietTimeoutMs: 60_000 });
    for (const d of reconciled.differences) violations.push(`reconcile ${d.kind}: ${d.message}`);
    return report(
      options.seed,
      faults,
      workload,
      seen,
      violations,
      cluster.unplannedExits(),
      formatReconcile(reconciled),
    );
  } finally {
    await cluster.stopAll();
    await Promise.all([kafka.destroy(), postgres.destroy()]);
    await rm(stateDir, { recursive: true, force: true });
  }
}

function chaosEnv(
  options: ChaosOptions,
  kafka: PrivateKafka,
  postgres: PrivatePostgres,
  stateDir: string,
): Record<string, string> {
  return {
    APP_ID: `chaos${options.seed}`,
    CLUSTER_SECRET: TEST_CLUSTER_SECRET,
    KAFKA_BROKERS: kafka.brokers,
    DATABASE_URL: postgres.url('bankstream'),
    PARTITIONS: String(PARTITIONS),
    STATE_DIR: stateDir,
    HTTP_PORT: '0',
    COMMIT_INTERVAL_MS: '100',
    BATCH_RECORDS_MAX: '500',
    STANDBY_REPLICAS: String(options.standbyReplicas ?? 0),
    SINK_BATCH_MS: '100',
    LOG_LEVEL: 'warn',
  };
}

/** Sends the workload in slices spread over the run while one fault at a time is injected. */
async function underFaults(
  options: ChaosOptions,
  config: Config,
  workload: Workload,
  cluster: Cluster,
  kafka: PrivateKafka,
  postgres: PrivatePostgres,
): Promise<string[]> {
  const rnd = random(options.seed * 7919 + 1);
  const faults: string[] = [];
  const started = Date.now();
  // About one slice a second (at least 20): a hold's post or void, a few seconds after it in the
  // workload, is sent a few seconds after it too.
  const slices = Math.max(20, Math.round(options.durationMs / 1000));
  const sender = (async () => {
    for (let i = 0; i < slices; i++) {
      const slice = workload.commands.slice(
        Math.floor((i * workload.commands.length) / slices),
        Math.floor(((i + 1) * workload.commands.length) / slices),
      );
      await sendReliably(config, slice, options.log);
      await sleep(Math.max(0, started + ((i + 1) * options.durationMs) / slices - Date.now()));
    }
  })();
  const scheduled = [...(options.schedule ?? [])];
  while (Date.now() - started < options.durationMs || scheduled.length > 0) {
    await sleep(2000 + rnd() * 4000);
    const roll = rnd();
    const kind = scheduled.shift() ?? FAULT_KINDS[FAULT_WEIGHTS.findIndex((w) => roll < w)]!;
    const fault = await injectFault(kind, rnd, cluster, kafka, postgres, options.brokerOutageMs ?? [30_000, 60_000]);
    const line = `${((Date.now() - started) / 1000).toFixed(1)}s ${fault}`;
    faults.push(line);
    options.log(`fault: ${line}`);
  }
  await sender;
  return faults;
}

async function injectFault(
  kind: FaultKind,
  rnd: () => number,
  cluster: Cluster,
  kafka: PrivateKafka,
  postgres: PrivatePostgres,
  outageMs: [number, number],
): Promise<string> {
  const instance = cluster.pick(rnd);
  if (kind === 'broker-outage') {
    // The instance restarts into a rebalance (it joins, the group rebalances, it restores) and the broker
    // goes down in the middle of that: the moment the client's own join retries used to run out (issue 17).
    await cluster.kill(instance, 'SIGKILL');
    cluster.start(instance);
    const intoStartMs = Math.round(1000 + rnd() * 3000);
    await sleep(intoStartMs);
    const downMs = Math.round(outageMs[0] + rnd() * (outageMs[1] - outageMs[0]));
    const killedAt = Date.now();
    await kafka.kill();
    await sleep(Math.max(0, killedAt + downMs - Date.now()));
    await kafka.start();
    return `SIGKILL ${instance}, restarted; ${intoStartMs} ms later SIGKILL of the broker, down ${downMs} ms, started`;
  }
  if (kind === 'kill-instance') {
    await cluster.kill(instance, 'SIGKILL');
    await sleep(500 + rnd() * 2500);
    cluster.start(instance);
    return `SIGKILL ${instance}, restarted`;
  }
  if (kind === 'pause-instance') {
    const pauseMs = Math.round(2000 + rnd() * 13_000);
    cluster.signal(instance, 'SIGSTOP');
    await sleep(pauseMs);
    cluster.signal(instance, 'SIGCONT');
    return `SIGSTOP ${instance} for ${pauseMs} ms, SIGCONT`;
  }
  if (kind === 'kill-sink') {
    await cluster.kill('sink', 'SIGKILL');
    await sleep(500 + rnd() * 1500);
    cluster.startSink();
    return 'SIGKILL sink, restarted';
  }
  if (kind === 'postgres') {
    await postgres.stop();
    await sleep(2000 + rnd() * 4000);
    await postgres.start();
    return 'PostgreSQL stopped and started';
  }
  if (kind === 'broker') {
    await kafka.stop();
    await sleep(1000);
    await kafka.start();
    return 'broker restarted';
  }
  if (!cluster.has('i2')) {
    cluster.start('i2');
    return 'scale up: started i2';
  }
  await cluster.kill('i2', 'SIGTERM');
  return 'scale down: stopped i2 (SIGTERM)';
}

/**
 * Retries a slice until the broker takes it (bounded: 5 minutes, longer than any broker outage injected):
 * a re-sent command is an exact duplicate, answered once.
 */
export async function sendReliably(
  config: Config,
  commands: WorkloadCommand[],
  log: (line: string) => void,
): Promise<void> {
  const deadline = Date.now() + 300_000;
  for (let _attempt = 0; ; _attempt++) {
    try {
      await sendWithKafkaJs(config, commands);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      log(`send failed (${(error as Error).message}); retrying`);
      await sleep(1000);
    }
  }
}

export async function waitForOutcomes(config: Config, count: number, timeoutMs: number): Promise<Observed> {
  const deadline = Date.now() + timeoutMs;
  let seen = await observeSoon(config, deadline);
  while (!quiet(seen, count) && Date.now() < deadline) {
    await sleep(1000);
    seen = await observe(config).catch(() => seen);
  }
  await sleep(2000);
  return observeSoon(config, Date.now() + 60_000);
}

/** Reads the topics, retrying while the broker is still coming back from a restart. */
async function observeSoon(config: Config, deadline: number): Promise<Observed> {
  for (;;) {
    try {
      return await observe(config);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(1000);
    }
  }
}

/** Postgres holds the outcome topics one for one, and the same balances as the stores. */
export async function postgresViolations(config: Config, seen: Observed, timeoutMs: number): Promise<string[]> {
  const problems: string[] = [];
  const { decided } = decidedOutcomes(seen, problems);
  const client = new pg.Client({ connectionString: config.databaseUrl });
  await client.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    let rows = await client.query<{ transfer_id: string; status: string; failure_code: string | null }>(
      'SELECT transfer_id, status, failure_code FROM transactions',
    );
    // An expiry is a row of its own, under the hold's id.
    const { placed, expiries } = holdsSeen(seen.completed);
    const owed = decided.size + expiries.length;
    while (rows.rowCount !== owed && Date.now() < deadline) {
      await sleep(1000);
      rows = await client.query('SELECT transfer_id, status, failure_code FROM transactions');
    }
    if (rows.rowCount !== owed) problems.push(`Postgres has ${rows.rowCount} transactions, the outcome topics ${owed}`);
    for (const row of rows.rows) {
      const outcome = decided.get(row.transfer_id);
      const code = row.status === 'COMPLETED' ? 'completed' : row.failure_code;
      if (!outcome) problems.push(`Postgres row ${row.transfer_id} has no outcome record`);
      else if (outcome.code !== code)
        problems.push(`${row.transfer_id}: ${code} in Postgres, ${outcome.code} in Kafka`);
    }
    const holds = await client.query<{ hold_id: string; status: string; amount: string; posted_amount: string | null }>(
      'SELECT hold_id, status, amount::text AS amount, posted_amount::text AS posted_amount FROM holds',
    );
    const placedCount = [...placed.keys()].filter((k) => !k.startsWith('?')).length;
    if (holds.rowCount !== placedCount)
      problems.push(`Postgres has ${holds.rowCount} holds, the outcome topics ${placedCount} placed`);
    for (const row of holds.rows) {
      const hold = placed.get(row.hold_id);
      const resolution = hold?.resolutions[0];
      const want = resolution?.status ?? 'pending';
      const posted = resolution?.status === 'posted' ? (resolution.amount ?? null) : null;
      if (!hold) problems.push(`Postgres hold ${row.hold_id} was never placed`);
      else if (row.status !== want || (posted !== null && minor(row.posted_amount ?? '0') !== minor(posted)))
        problems.push(
          `hold ${row.hold_id}: ${row.status} ${row.posted_amount ?? ''} in Postgres, ${want} ${posted ?? ''} in Kafka`,
        );
    }
    const balances = await client.query<{ id: string; balance: string }>(
      'SELECT id, balance::text AS balance FROM accounts',
    );
    for (const row of balances.rows) {
      const store = seen.balances.get(row.id);
      const cents = store ? BigInt(store.balance) : 0n;
      const pgCents = BigInt(row.balance.replace('.', '').replace(/^(-?)0+(?=\d)/, '$1'));
      if (cents !== pgCents)
        problems.push(`${row.id}: balance ${row.balance} in Postgres, ${cents} minor units in the store`);
    }
  } finally {
    await client.end();
  }
  return problems;
}

function report(
  seed: number,
  faults: string[],
  workload: Workload,
  seen: Observed,
  violations: string[],
  unplannedExits: string[],
  reconciled: string,
): ChaosReport {
  // An expiry is answered under its hold's id: counted apart (a second expiry of a hold is a duplicate).
  const decisions = [...seen.completed, ...seen.failed.filter((f) => f.code !== 'idempotency_conflict')];
  const ids = decisions.filter((o) => o.type !== 'hold_expiry').map((o) => o.transferId!);
  const expiries = decisions.filter((o) => o.type === 'hold_expiry').map((o) => o.transferId!);
  const owed = new Set(
    [...workload.setup, ...workload.commands].flatMap((c) =>
      c.expect.kind === 'outcome' ? [c.expect.transferId] : [],
    ),
  );
  const answered = new Set(ids);
  return {
    seed,
    faults,
    commands: workload.setup.length + workload.commands.length,
    owed: owed.size,
    outcomes: ids.length,
    losses: [...owed].filter((id) => !answered.has(id)).length,
    duplicates: ids.length - answered.size + expiries.length - new Set(expiries).size,
    holds: holdCounts(seen.completed, seen.observedAtMs),
    holdAnswers: resolveAnswers(seen),
    reconcile: reconciled,
    violations,
    unplannedExits,
  };
}

/** The processor instances and the sink as child processes, restartable by name. */
export class Cluster {
  env: Record<string, string> = {};
  readonly #children = new Map<string, Child>();
  /** Per-instance settings (e.g. HTTP_PORT, ADVERTISED_URL), kept for restarts. */
  readonly #instanceEnv = new Map<string, Record<string, string>>();
  readonly #stateDir: string;
  readonly #wanted = new Set<string>();
  /** Children this class signalled to end (SIGKILL, SIGTERM): their exit is planned. */
  readonly #planned = new WeakSet<Child>();
  readonly #unplanned: string[] = [];
  readonly #logDir: string | undefined;

  constructor(stateDir: string, logDir?: string) {
    this.#stateDir = stateDir;
    this.#logDir = logDir;
  }

  start(instance: string, env?: Record<string, string>): void {
    if (env) this.#instanceEnv.set(instance, env);
    this.#wanted.add(instance);
    const own = this.#instanceEnv.get(instance) ?? {};
    this.#watch(
      instance,
      spawnFixture(CLI, { ...this.env, ...own, INSTANCE_ID: instance, STATE_DIR: this.#stateDir }, [
        'start',
        '--no-sink',
      ]),
    );
  }

  startSink(): void {
    this.#wanted.add('sink');
    this.#watch('sink', spawnFixture(CLI, { ...this.env, INSTANCE_ID: 'sink' }, ['sink']));
  }

  #watch(name: string, child: Child): void {
    this.#children.set(name, child);
    void child.exited.then((code) => {
      if (this.#logDir) appendFileSync(path.join(this.#logDir, `${name}-${child.process.pid}.log`), child.output());
      if (this.#planned.has(child)) return;
      // Enough lines for a whole stack trace with its error's fields (five showed only "syscall: 'read'").
      const tail = child.output().trim().split('\n').slice(-40).join(' | ').slice(-6000);
      this.#unplanned.push(
        `${name} (pid ${child.process.pid}) exited by itself: code ${code}, signal ${child.process.signalCode}; last output: ${tail}`,
      );
    });
  }

  /** Exits nobody asked for, in order; a run with any fails. */
  unplannedExits(): string[] {
    return [...this.#unplanned];
  }

  /** The process id of the named child now (changes when it is restarted). */
  pid(name: string): number | undefined {
    return this.#children.get(name)?.process.pid;
  }

  has(name: string): boolean {
    return this.#wanted.has(name);
  }

  pick(rnd: () => number): string {
    const instances = [...this.#wanted].filter((n) => n !== 'sink');
    return instances[Math.floor(rnd() * instances.length)]!;
  }

  signal(name: string, signal: NodeJS.Signals): void {
    this.#children.get(name)?.process.kill(signal);
  }

  async kill(name: string, signal: NodeJS.Signals): Promise<void> {
    const child = this.#children.get(name);
    if (signal !== 'SIGKILL') this.#wanted.delete(name);
    if (child) {
      this.#planned.add(child);
      await killChild(child, signal);
    }
  }

  /** Every wanted process running again (a process that died by itself is restarted too). */
  async restoreAll(): Promise<void> {
    for (const name of this.#wanted) {
      const child = this.#children.get(name);
      child?.process.kill('SIGCONT');
      if (!child || child.process.exitCode !== null || child.process.signalCode !== null) {
        if (name === 'sink') this.startSink();
        else this.start(name);
      }
    }
  }

  async stopAll(): Promise<void> {
    for (const [name, child] of this.#children) {
      this.#planned.add(child);
      child.process.kill('SIGCONT');
      await killChild(child, 'SIGTERM');
      this.#children.delete(name);
    }
  }

  output(name: string): string {
    return this.#children.get(name)?.output() ?? '';
  }
}

/** A decimal string of at most 2 fraction digits in cents, exact ("25" = "25.0" = "25.00"). */
function minor(text: string): bigint {
  const [units = '0', fraction = ''] = text.split('.');
  return BigInt(units + fraction.padEnd(2, '0').slice(0, 2));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function formatReport(r: ChaosReport): string {
  return [
    `chaos run, seed ${r.seed}`,
    `faults injected: ${r.faults.length}`,
    ...r.faults.map((f) => `  ${f}`),
    `commands sent: ${r.commands}`,
    `outcomes owed (distinct transferIds): ${r.owed}`,
    `outcomes read (read_committed): ${r.outcomes}`,
    `holds: ${Object.entries(r.holds)
      .map(([k, n]) => `${n} ${k}`)
      .join(', ')}`,
    `posts and voids answered: ${Object.entries(r.holdAnswers)
      .sort()
      .map(([k, n]) => `${n} ${k}`)
      .join(', ')}`,
    `losses: ${r.losses}`,
    `duplicates: ${r.duplicates}`,
    r.violations.length === 0 ? 'violations: none' : `violations: ${r.violations.length}`,
    ...r.violations.slice(0, 50).map((v) => `  ${v}`),
    r.unplannedExits.length === 0 ? 'unplanned exits: none' : `unplanned exits: ${r.unplannedExits.length}`,
    ...r.unplannedExits.slice(0, 20).map((e) => `  ${e}`),
    r.reconcile,
  ].join('\n');
}
