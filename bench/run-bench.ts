// The benchmark, phase by phase, on one broker and one fresh database:
//   1. raw-broker  Kafka's ProducerPerformance alone (acks=all, 200-byte records, the engine's partitions)
//   2. setup       open and fund the accounts through the engine (exactly-once), wait for every deposit
//   3. backlog     produce the transfers with the engine stopped (the generator's own rate is reported)
//   4. engine      start `bankstream start --no-sink` on the backlog: sustained commands/s, CPU per command,
//                  and (writes) the records, markers and bytes it wrote per command, by topic
//   5. scale       the same backlog with two instances of a second application id
//   6. latency     the one-instance engine again, the generator in its own process at 10/25/50/75 % of
//                  the sustained rate: visible latency p50/p99/p99.9 at each (table and SVG)
//   7. api         GET /v1/accounts/:id with autocannon, engine idle, then at half load
//   8. restore     engine stopped, state folder deleted, stores rebuilt from the changelogs
//   9. sink        `bankstream sink` alone catches up on every outcome: rows/s into Postgres
//  10. baseline    the seed-style processor on the same input topic, for a fixed window
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
  localBrokerPid,
  machineInfo,
  prepareEnvironment,
  REPO_ROOT,
  teardownEnvironment,
} from './environment.ts';
import { measureApi, measureApiUnderLoad } from './phases/api.ts';
import { measureBaseline } from './phases/baseline.ts';
import { measureEngineBacklog, produceBacklog, restartEngine, setupAccounts, waitForIdle } from './phases/engine.ts';
import { curveRates, measureLatency } from './phases/latency.ts';
import { measureRawBroker } from './phases/raw-broker.ts';
import { measureRestore } from './phases/restore.ts';
import { measureInstances } from './phases/scale.ts';
import { measureSink } from './phases/sink.ts';
import { startWritesProbe } from './phases/writes.ts';
import { summarizeProfile } from './profile.ts';
import { writeReadmeSection } from './readme-section.ts';
import { type BenchResults, deriveRatios, markdownReport, writeResults } from './report.ts';
import { round, sleep } from './series.ts';
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
    schema: 'bankstream-bench/2',
    startedAt: new Date(startedMs).toISOString(),
    finishedAt: '',
    durationS: 0,
    machine: await machineInfo(settings.postgresUrl),
    settings: publicSettings(settings),
    load: {},
    latencyCurve: [],
    api: {},
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
  deriveRatios(results);
  results.finishedAt = new Date().toISOString();
  results.durationS = Math.round((Date.now() - startedMs) / 1000);
  const file = await writeResults(settings.resultsDir, results);
  const report = markdownReport(results, file);
  if (settings.readme) {
    const warning = await writeReadmeSection(path.join(REPO_ROOT, 'bench', 'README.md'), report, REPO_ROOT);
    log(warning ?? 'bench/README.md: latest-run section rewritten');
  }
  return { results, file, table: report };
}

/** Before the latency curve: no outcome for this long means the engine has no backlog left (bounded). */
const IDLE_QUIET_MS = 2000;
const IDLE_TIMEOUT_MS = 90_000;

type Phase = <T>(name: string, run: () => Promise<T>) => Promise<T | undefined>;

async function runPhases(
  bench: BenchEnvironment,
  settings: BenchSettings,
  results: BenchResults,
  phase: Phase,
): Promise<void> {
  if (settings.rawRecords > 0) {
    results.raw = await phase('raw-broker', () => measureRawBroker(bench, settings));
    results.rawRecordsPerSecond = results.raw?.recordsPerSecond;
  }
  results.load.setupS = await phase('setup', () => setupAccounts(bench, settings));
  if (results.load.setupS === undefined) return;
  // Before the backlog: the input topic's growth is the commands' own size; the engine writes nothing meanwhile.
  const probe = await phase('writes-snapshot', () => startWritesProbe(bench, localBrokerPid()));
  const backlog = await phase('backlog', () => produceBacklog(bench, settings));
  if (!backlog) return;
  results.load.backlogTransfers = backlog.sent;
  results.load.backlogPerSecond = backlog.ratePerSecond;
  const measured = await phase('engine', () => measureEngineBacklog(bench, settings, backlog));
  results.engine = measured?.result;
  let engine = measured?.engine;
  const fullRate = results.engine?.sustainedPerSecond ?? 0;
  const answered = results.engine;
  if (probe && answered)
    // A timed-out engine is still working: divide by what it had answered, an approximation (noted).
    results.writes = await phase('writes', async () => {
      await sleep(1000);
      return probe.finish(answered.timedOut ? answered.count : backlog.sent);
    });
  if (settings.scaleInstances > 1 && fullRate > 0) {
    // The scale-out run gets the machine to itself: the one-instance engine stops, and restarts after.
    await engine?.stop(60_000);
    results.scale = await phase('scale', () => measureInstances(bench, settings, backlog, settings.scaleInstances));
    engine = await phase('engine-restart', () => restartEngine(bench));
  }
  if (engine && fullRate > 0) {
    const running = engine;
    await phase('engine-idle', () => waitForIdle(bench, IDLE_QUIET_MS, IDLE_TIMEOUT_MS));
    const rates = curveRates(fullRate, settings.latencyFractions);
    for (const [i, fraction] of settings.latencyFractions.entries()) {
      const label = `${Math.round(fraction * 100)}pct`;
      const point = await phase(`latency-${label}`, () => measureLatency(bench, settings, running, label, rates[i]!));
      if (point) results.latencyCurve.push({ ...point, fraction });
    }
    results.api.idle = await phase('api-idle', () => measureApi(bench, settings));
    results.api.halfLoad = await phase('api-half-load', () => measureApiUnderLoad(bench, settings, fullRate / 2));
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
    'recordsPerSecond',
    'sustainedPerSecond',
    'ratePerSecond',
    'perSecond',
    'rowsPerSecond',
    'requestsPerSecond',
    'answeredPerSecond',
    'status',
    'timedOut',
  ];
  const parts = keys.filter((k) => result[k] !== undefined).map((k) => `${k}=${String(result[k])}`);
  const visible = result['visible'] as { p50Ms: number; p99Ms: number; p999Ms: number } | undefined;
  if (visible) parts.push(`p50/p99/p99.9=${visible.p50Ms}/${visible.p99Ms}/${visible.p999Ms} ms`);
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

const NOTES = [
  'Throughput: the transfers are produced before the engine starts (a backlog), so the generator does not share the CPU; sustained = the rate between 10% and 90% of the backlog answered, counted by a read_committed reader.',
  'Engine = `bankstream start --no-sink` (exactly-once, one instance, default commit interval); the sink is measured alone afterwards. The baseline writes PostgreSQL inline, so its rate includes work that bankstream does in the sink.',
  "rawNormalized = the engine's sustained commands/s ÷ the records/s of Kafka's ProducerPerformance (acks=all, 200-byte records, the engine's partition count), both measured in this run on the same broker.",
  "Engine CPU per command = the engine process's CPU time (user + system, all threads, /proc) over the sustained window ÷ the commands answered in it.",
  "Written per command: the record batches appended to each of the run's topics in the broker's log folder while the engine worked through the backlog (records, transaction markers, bytes as stored), ÷ the backlog's commands.",
  'Scale: a second application id (own group, legs, changelogs, outputs) with two instances on the same input topic, the one-instance engine stopped meanwhile; it replays the setup commands first, outside the 10–90 % window.',
  "Latency: requestedAt (set by the generator, `bankstream load` in its own process) → the moment a read_committed consumer in the bench process sees the outcome, at fixed shares of the sustained rate; the first seconds after the first answer are a warm-up and not recorded. The curve's x axis is the rate the generator achieved.",
  'API: autocannon in the bench process against the one instance, engine idle, then with the generator at half the sustained rate.',
  'CPU cores count the measured process only: the broker, PostgreSQL, the generator and the bench process share the same cores.',
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
