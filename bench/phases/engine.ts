// The engine's phases: open and fund the accounts, produce a backlog of transfers with the engine
// stopped, then start the engine (exactly-once, `bankstream start --no-sink`) and time how fast the
// committed outcomes of the backlog appear.
import { runLoad } from '../../src/load/index.ts';
import type { LoadResult } from '../../src/load/types.ts';
import { type BenchChild, type BenchEnvironment, localBrokerPid, processCpuSeconds, spawnCli } from '../environment.ts';
import { OutcomeReader } from '../outcome-reader.ts';
import { pollUntil, type RateSummary, RateSeries, sleep } from '../series.ts';
import type { BenchSettings } from '../settings.ts';

export interface EngineThroughput extends RateSummary {
  transfers: number;
  completed: number;
  failed: number;
  /** Seconds from the child's spawn to its first committed outcome (join, open stores). */
  startS: number;
  timedOut: boolean;
}

const READY_TIMEOUT_MS = 120_000;

export function accountPrefix(bench: BenchEnvironment): string {
  return `${bench.prefix}-acc`;
}

/** Opens and funds the accounts through a running engine, and waits until every deposit is answered. */
export async function setupAccounts(bench: BenchEnvironment, settings: BenchSettings): Promise<number> {
  const started = Date.now();
  const engine = spawnCli(bench, 'engine-setup', ['start', '--no-sink']);
  try {
    await engine.waitForOutput('tasks running', READY_TIMEOUT_MS);
    const runId = `${bench.prefix}-setup`;
    let funded = 0;
    const reader = await OutcomeReader.open(bench.config.kafkaBrokers, [bench.config.topics.completed], 'latest');
    reader.start((record) => {
      if (record.key?.toString('utf8').startsWith(`${runId}-fund-`)) funded++;
    });
    await runLoad({ ...loadBase(bench, settings), runId, setup: true, count: 0, setupSettleMs: 0 });
    const done = await pollUntil(() => (reader.check(), funded >= settings.accounts), READY_TIMEOUT_MS, 100);
    await reader.stop();
    if (!done) throw new Error(`only ${funded} of ${settings.accounts} deposits were answered (see ${engine.logFile})`);
  } finally {
    await engine.stop();
  }
  return (Date.now() - started) / 1000;
}

/** Produces the backlog as fast as the generator goes, with no engine running. */
export async function produceBacklog(bench: BenchEnvironment, settings: BenchSettings): Promise<LoadResult> {
  return runLoad({
    ...loadBase(bench, settings),
    runId: `${bench.prefix}-backlog`,
    setup: false,
    count: settings.backlogTransfers,
    ratePerSecond: 0,
  });
}

/** Starts the engine on the backlog and counts its committed transfer outcomes; returns the running engine too. */
export async function measureEngineBacklog(
  bench: BenchEnvironment,
  settings: BenchSettings,
  backlog: LoadResult,
): Promise<{ result: EngineThroughput; engine: BenchChild }> {
  const expected = backlog.expected.transfers + Object.values(backlog.expected.failed).reduce((a, b) => a + b, 0);
  const prefix = `${backlog.runId}-t-`;
  const counts = { completed: 0, failed: 0 };
  const reader = await OutcomeReader.open(
    bench.config.kafkaBrokers,
    [bench.config.topics.completed, bench.config.topics.failed],
    'latest',
  );
  reader.start((record) => {
    if (!record.key?.toString('utf8').startsWith(prefix)) return;
    if (record.topic === bench.config.topics.completed) counts.completed++;
    else counts.failed++;
  });
  const series = new RateSeries();
  const brokerPid = localBrokerPid();
  const spawnedAt = Date.now();
  const engine = spawnCli(
    bench,
    'engine',
    ['start', '--no-sink'],
    settings.cpuProfile ? ['--cpu-prof', `--cpu-prof-dir=${settings.profileDir}`] : [],
  );
  let firstAt: number | undefined;
  const done = await pollUntil(
    () => {
      reader.check();
      engine.assertRunning();
      const decided = counts.completed + counts.failed;
      if (decided > 0) firstAt ??= Date.now();
      series.add(Date.now(), decided, engine.cpuSeconds(), processCpuSeconds(brokerPid));
      return decided >= expected;
    },
    settings.engineTimeoutS * 1000,
    100,
  );
  await sleep(200);
  await reader.stop();
  const summary = series.summary();
  return {
    engine,
    result: {
      ...summary,
      transfers: expected,
      completed: counts.completed,
      failed: counts.failed,
      startS: ((firstAt ?? Date.now()) - spawnedAt) / 1000,
      timedOut: !done,
    },
  };
}

export function loadBase(bench: BenchEnvironment, settings: BenchSettings) {
  return {
    brokers: bench.config.kafkaBrokers,
    topic: bench.config.topics.input,
    accounts: settings.accounts,
    accountPrefix: accountPrefix(bench),
    skew: settings.skew,
    invalidRatio: settings.invalidRatio,
    seed: settings.seed,
    clientId: 'bankstream-bench-load',
  };
}

/** The one-instance engine again on its kept state folder (after the scale-out phase stopped it). */
export async function restartEngine(bench: BenchEnvironment): Promise<BenchChild> {
  // Not profiled: the profile summarized is the backlog run's.
  const engine = spawnCli(bench, 'engine-again', ['start', '--no-sink']);
  await engine.waitForOutput('tasks running', READY_TIMEOUT_MS);
  return engine;
}

/**
 * Waits until the engine has answered nothing for `quietMs` (bounded by timeoutMs), so a backlog left over
 * by a timed-out phase does not queue ahead of the latency curve's first commands. Returns the outcomes seen.
 */
export async function waitForIdle(bench: BenchEnvironment, quietMs: number, timeoutMs: number): Promise<number> {
  const reader = await OutcomeReader.open(
    bench.config.kafkaBrokers,
    [bench.config.topics.completed, bench.config.topics.failed],
    'latest',
  );
  let seen = 0;
  let lastAt = Date.now();
  reader.start(() => {
    seen++;
    lastAt = Date.now();
  });
  try {
    await pollUntil(() => (reader.check(), Date.now() - lastAt >= quietMs), timeoutMs, 100);
    return seen;
  } finally {
    await reader.stop();
  }
}
