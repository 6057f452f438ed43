// End-to-end latency under a steady load: the generator sends transfers at a fixed rate while a
// read_committed reader (the engine's Fetcher) watches the outcome topics. Two latencies per outcome:
//   visible  = when a read_committed consumer sees the outcome − the command's requestedAt
//              (what a downstream system experiences: includes the commit interval and the commit);
//   decided  = the outcome's completedAt − requestedAt (processing alone, before the commit).
// Outcome record timestamps are not used: like Kafka Streams, the engine gives an output the
// timestamp of the input record that caused it, so they equal the request time.
import { runLoad } from '../../src/load/index.ts';
import type { BenchChild, BenchEnvironment } from '../environment.ts';
import { createLatencyHistogram, type LatencySummary } from '../histogram.ts';
import { OutcomeReader } from '../outcome-reader.ts';
import { pollUntil, round, sleep } from '../series.ts';
import type { BenchSettings } from '../settings.ts';
import { loadBase } from './engine.ts';

export interface LatencyResult {
  label: string;
  targetPerSecond: number;
  /** Commands the generator got acknowledged per second. */
  sentPerSecond: number;
  /** Outcomes per second over the phase (a rate below the target means the engine fell behind). */
  answeredPerSecond: number;
  visible: LatencySummary;
  decided: LatencySummary;
  /** Outcomes still missing when the phase gave up waiting. */
  missing: number;
}

const DRAIN_TIMEOUT_MS = 60_000;

export async function measureLatency(
  bench: BenchEnvironment,
  settings: BenchSettings,
  engine: BenchChild,
  label: string,
  ratePerSecond: number,
): Promise<LatencyResult> {
  engine.assertRunning();
  const runId = `${bench.prefix}-lat-${label}`;
  const prefix = `${runId}-t-`;
  const visible = await createLatencyHistogram();
  const decided = await createLatencyHistogram();
  const warmupEndsMs = Date.now() + settings.latencyWarmupS * 1000;
  let answered = 0;
  const reader = await OutcomeReader.open(
    bench.config.kafkaBrokers,
    [bench.config.topics.completed, bench.config.topics.failed],
    'latest',
  );
  reader.start((record, seenAtMs) => {
    if (!record.key?.toString('utf8').startsWith(prefix)) return;
    answered++;
    const outcome = JSON.parse(record.value!.toString('utf8')) as { requestedAt: string; completedAt: string };
    const requestedMs = Date.parse(outcome.requestedAt);
    if (requestedMs < warmupEndsMs) return;
    visible.record(seenAtMs - requestedMs);
    decided.record(Date.parse(outcome.completedAt) - requestedMs);
  });
  const started = Date.now();
  const load = await runLoad({
    ...loadBase(bench, settings),
    runId,
    setup: false,
    ratePerSecond,
    durationMs: settings.latencyS * 1000,
  });
  const expected = load.expected.transfers + Object.values(load.expected.failed).reduce((a, b) => a + b, 0);
  await pollUntil(() => (reader.check(), engine.assertRunning(), answered >= expected), DRAIN_TIMEOUT_MS, 50);
  const elapsedMs = Date.now() - started;
  await sleep(100);
  await reader.stop();
  return {
    label,
    targetPerSecond: Math.round(ratePerSecond),
    sentPerSecond: load.ratePerSecond,
    answeredPerSecond: Math.round((answered * 1000) / elapsedMs),
    visible: visible.summary(),
    decided: decided.summary(),
    missing: Math.max(0, expected - answered),
  };
}

export function describeLatency(result: LatencyResult): string {
  const v = result.visible;
  return `${v.p50Ms} / ${v.p99Ms} / ${v.p999Ms} ms (max ${v.maxMs}, n=${v.count}, ${round(result.answeredPerSecond, 0)}/s answered)`;
}
