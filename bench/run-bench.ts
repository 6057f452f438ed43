// The benchmark, phase by phase, on one broker and one fresh database:
//   1. setup      open and fund the accounts through the engine (exactly-once), wait for every deposit
//   2. backlog    produce the transfers with the engine stopped (the generator's own rate is reported)
//   3. engine     start `bankstream start --no-sink` on the backlog: sustained completed transfers/s
//   4. latency    with the same engine: steady load at the sustained rate, then at half of it
//   5. api        GET /v1/accounts/:id with autocannon, when the instance serves the API
//   6. restore    engine stopped, state folder deleted, stores rebuilt from the changelogs
//   7. sink       `bankstream sink` alone catches up on every outcome: rows/s into Postgres
//   8. baseline   the seed-style processor on the same input topic, for a fixed window
// A failing phase is recorded and the run goes on with the phases that do not need it; everything the
// run created (topics, database, state folder, child processes) is removed at the end.
import { spawnSync } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Admin } from '@platformatic/kafka';
import {
  type BenchEnvironment,
  freePort,
  killChildren,
  machineInfo,
  prepareEnvironment,
  REPO_ROOT,
  teardownEnvironment,
} from './environment.ts';
import { measureApi } from './phases/api.ts';
import { measureBaseline } from './phases/baseline.ts';
import { measureEngineBacklog, produceBacklog, setupAccounts } from './phases/engine.ts';
import { measureLatency } from './phases/latency.ts';
import { measureRestore } from './phases/restore.ts';
import { measureSink } from './phases/sink.ts';
import { summarizeProfile } from './profile.ts';
import { type BenchResults, markdownTable, writeResults } from './report.ts';
import { round } from './series.ts';
import type { BenchSettings } from './settings.ts';

export interface BenchOutcome {
  results: BenchResults;
  file: string;
  table: string;
}

export type BenchLog = (line: string) => void;

export async function runBench(settings: BenchSettings, log: BenchLog): Promise<BenchOutcome> {
  await waitForQuiet(settings.quietWaitS, log);
  const startedMs = Date.now();
  await ensureBroker(settings, log);
  const results: BenchResults = {
    schema: 'bankstream-bench/1',
    startedAt: new Date(startedMs).toISOString(),
    finishedAt: '',
    durationS: 0,
    machine: await machineInfo(settings.postgresUrl),
    settings: publicSettings(settings),
    load: {},
    latency: {},
    loadAverage: { start: round(os.loadavg()[0] ?? 0, 2) },
    failures: [],
    notes: NOTES,
  };
  if (results.loadAverage['start']! > results.machine.cores / 2)
    log(
      `warning: the machine is busy (1-min load average ${results.loadAverage['start']} on ${results.machine.cores} cores); results will be skewed`,
    );
  const bench = await prepareEnvironment({ ...settings, httpPort: await freePort() });
  log(
    `bench ${bench.prefix}: ${settings.partitions} partitions, ${settings.accounts} accounts, ${settings.backlogTransfers} backlog transfers; logs in ${bench.logDir}`,
  );
  const phase = phaseRunner(results, log);
  try {
    await runPhases(bench, settings, results, phase);
  } finally {
    await killChildren();
    await teardownEnvironment(bench, settings.keep).catch((error: unknown) =>
      log(`teardown failed: ${(error as Error).message}`),
    );
  }
  if (settings.cpuProfile)
    results.profile = await phase('profile', async () =>
      summarizeProfile(await newestProfile(settings.profileDir), 25),
    );
  if (results.engine && results.baseline && results.baseline.perSecond > 0)
    results.ratio = round(results.engine.sustainedPerSecond / results.baseline.perSecond, 1);
  results.finishedAt = new Date().toISOString();
  results.durationS = Math.round((Date.now() - startedMs) / 1000);
  const file = await writeResults(settings.resultsDir, results);
  return { results, file, table: markdownTable(results) };
}

const LIGHT_RATE_PER_SECOND = 1000;

type Phase = <T>(name: string, run: () => Promise<T>) => Promise<T | undefined>;

async function runPhases(
  bench: BenchEnvironment,
  settings: BenchSettings,
  results: BenchResults,
  phase: Phase,
): Promise<void> {
  results.load.setupS = await phase('setup', () => setupAccounts(bench, settings));
  if (results.load.setupS === undefined) return;
  const backlog = await phase('backlog', () => produceBacklog(bench, settings));
  if (!backlog) return;
  results.load.backlogTransfers = backlog.sent;
  results.load.backlogPerSecond = backlog.ratePerSecond;
  const measured = await phase('engine', () => measureEngineBacklog(bench, settings, backlog));
  results.engine = measured?.result;
  const engine = measured?.engine;
  const fullRate = results.engine?.sustainedPerSecond ?? 0;
  if (engine && fullRate > 0) {
    results.latency.full = await phase('latency-full', () => measureLatency(bench, settings, engine, 'full', fullRate));
    results.latency.half = await phase('latency-half', () =>
      measureLatency(bench, settings, engine, 'half', fullRate / 2),
    );
    // A light load shows the latency the design itself costs (two legs, each waiting for a commit), without queueing.
    results.latency.light = await phase('latency-light', () =>
      measureLatency(bench, settings, engine, 'light', Math.min(LIGHT_RATE_PER_SECOND, fullRate / 4)),
    );
    results.api = await phase('api', () => measureApi(bench, settings));
  }
  // SIGTERM: a clean stop commits, leaves the group and writes the CPU profile.
  await engine?.stop(60_000);
  results.restore = await phase('restore', () => measureRestore(bench, settings));
  results.sink = await phase('sink', () => measureSink(bench, settings));
  if (settings.baselineS > 0)
    results.baseline = await phase('baseline', () => measureBaseline(bench, settings, backlog.runId));
}

function phaseRunner(results: BenchResults, log: BenchLog): Phase {
  return async (name, run) => {
    const started = Date.now();
    log(`▸ ${name}`);
    try {
      const value = await run();
      results.loadAverage[name] = round(os.loadavg()[0] ?? 0, 2);
      log(`  ${name} done in ${((Date.now() - started) / 1000).toFixed(1)} s${describe(value)}`);
      return value;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      results.failures.push({ phase: name, error: message });
      log(`  ${name} FAILED: ${message}`);
      return undefined;
    }
  };
}

function describe(value: unknown): string {
  if (typeof value !== 'object' || value === null) return '';
  const v = value as Record<string, unknown>;
  const result = (v['result'] ?? v) as Record<string, unknown>;
  const keys = [
    'sustainedPerSecond',
    'ratePerSecond',
    'perSecond',
    'rowsPerSecond',
    'requestsPerSecond',
    'answeredPerSecond',
    'status',
  ];
  const parts = keys.filter((k) => result[k] !== undefined).map((k) => `${k}=${String(result[k])}`);
  const visible = result['visible'] as { p50Ms: number; p99Ms: number; p999Ms: number } | undefined;
  if (visible) parts.push(`p50/p99/p99.9=${visible.p50Ms}/${visible.p99Ms}/${visible.p999Ms} ms`);
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

const NOTES = [
  'Throughput: the transfers are produced before the engine starts (a backlog), so the generator does not share the CPU; sustained = the rate between 10% and 90% of the backlog answered, counted by a read_committed reader.',
  'Engine = `bankstream start --no-sink` (exactly-once, one instance, default commit interval); the sink is measured alone afterwards. The baseline writes PostgreSQL inline, so its rate includes work that bankstream does in the sink.',
  'Latency: requestedAt (set by the generator) → the moment a read_committed consumer sees the outcome, with the generator and the reader in the bench process; full load = the sustained rate measured above, half load = half of it, light load = 1,000/s; the first seconds are a warm-up and not recorded.',
  'CPU cores count the measured process only: the broker, PostgreSQL and the bench process share the same cores.',
];

function publicSettings(s: BenchSettings): Record<string, unknown> {
  const { postgresUrl: _url, profileDir: _p, resultsDir: _r, workDir: _w, ...rest } = s;
  return { ...rest, exactlyOnce: true };
}

/** Other work on the machine skews every number: wait (bounded) until the load average is low. */
async function waitForQuiet(timeoutS: number, log: BenchLog): Promise<void> {
  if (timeoutS <= 0) return;
  const quiet = () => (os.loadavg()[0] ?? 0) < os.availableParallelism() / 2;
  if (quiet()) return;
  log(`waiting up to ${timeoutS} s for the machine to be quiet (1-min load average ${round(os.loadavg()[0] ?? 0, 2)})`);
  const deadline = Date.now() + timeoutS * 1000;
  while (!quiet() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5000));
}

/** Checks that a broker answers; starts the local one with scripts/kafka.sh when allowed. */
async function ensureBroker(settings: BenchSettings, log: BenchLog): Promise<void> {
  if (await brokerAnswers(settings.brokers)) return;
  if (!settings.startKafka)
    throw new Error(
      `no Kafka broker answers on ${settings.brokers.join(',')}; start one (bash scripts/kafka.sh start)`,
    );
  log('no broker answers: starting the local one (scripts/kafka.sh start)');
  const started = spawnSync('bash', [path.join(REPO_ROOT, 'scripts', 'kafka.sh'), 'start'], {
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: 300_000,
  });
  if (started.status !== 0 || !(await brokerAnswers(settings.brokers)))
    throw new Error('could not start the local Kafka broker (scripts/kafka.sh start)');
}

async function brokerAnswers(brokers: string[]): Promise<boolean> {
  const admin = new Admin({ clientId: 'bankstream-bench-probe', bootstrapBrokers: brokers, timeout: 5000, retries: 1 });
  try {
    await admin.listTopics();
    return true;
  } catch {
    return false;
  } finally {
    await admin.close().catch(() => undefined);
  }
}

async function newestProfile(dir: string): Promise<string> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no .cpuprofile in ${dir} (the engine did not exit cleanly?)`);
  const withTimes = await Promise.all(files.map(async (f) => ({ f, t: (await stat(path.join(dir, f))).mtimeMs })));
  return path.join(dir, withTimes.sort((a, b) => b.t - a.t)[0]!.f);
}
