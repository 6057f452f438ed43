// End-to-end latency under a steady load: the generator (its own process, `bankstream load`) sends
// transfers at a fixed rate while a read_committed reader (the engine's Fetcher) in the bench process
// watches the outcome topics. Two latencies per outcome:
//   visible  = when a read_committed consumer sees the outcome − the command's requestedAt
//              (what a downstream system experiences: includes the commit interval and the commit);
//   decided  = the outcome's completedAt − requestedAt (processing alone, before the commit).
// Outcome record timestamps are not used: like Kafka Streams, the engine gives an output the
// timestamp of the input record that caused it, so they equal the request time.
import type { BenchChild, BenchEnvironment } from '../environment.ts';
import { createLatencyHistogram, type LatencySummary } from '../histogram.ts';
import { OutcomeReader } from '../outcome-reader.ts';
import { pollUntil, round, sleep } from '../series.ts';
import type { BenchSettings } from '../settings.ts';
import { expectedOutcomes, spawnGenerator } from './generator.ts';

export interface LatencyResult {
  label: string;
  /** Share of the engine's sustained backlog rate this load asked for. */
  fraction?: number;
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

/** The fixed rates of the latency curve: shares of the sustained rate, rounded to whole commands/s. */
export function curveRates(sustainedPerSecond: number, fractions: readonly number[]): number[] {
  return fractions.map((f) => Math.max(1, Math.round(sustainedPerSecond * f)));
}

export async function measureLatency(
  bench: BenchEnvironment,
  settings: BenchSettings,
  engine: BenchChild,
  label: string,
  ratePerSecond: number,
): Promise<LatencyResult> {
  engine.assertRunning();
  const visible = await createLatencyHistogram();
  const decided = await createLatencyHistogram();
  let warmupEndsMs: number | undefined;
  let answered = 0;
  let firstRequestedMs = Number.POSITIVE_INFINITY;
  let lastSeenMs = 0;
  const reader = await OutcomeReader.open(
    bench.config.kafkaBrokers,
    [bench.config.topics.completed, bench.config.topics.failed],
    'latest',
  );
  const generator = spawnGenerator(bench, settings, `lat-${label}`, ratePerSecond, settings.latencyS);
  const prefix = `${generator.runId}-t-`;
  reader.start((record, seenAtMs) => {
    if (!record.key?.toString('utf8').startsWith(prefix)) return;
    answered++;
    lastSeenMs = seenAtMs;
    const outcome = JSON.parse(record.value!.toString('utf8')) as { requestedAt: string; completedAt: string };
    const requestedMs = Date.parse(outcome.requestedAt);
    firstRequestedMs = Math.min(firstRequestedMs, requestedMs);
    // The generator's own start (a node process, its producer) is not the engine's: the warm-up counts
    // from the first command answered.
    warmupEndsMs ??= requestedMs + settings.latencyWarmupS * 1000;
    if (requestedMs < warmupEndsMs) return;
    visible.record(seenAtMs - requestedMs);
    decided.record(Date.parse(outcome.completedAt) - requestedMs);
  });
  try {
    const load = await generator.result();
    const expected = expectedOutcomes(load);
    await pollUntil(() => (reader.check(), engine.assertRunning(), answered >= expected), DRAIN_TIMEOUT_MS, 50);
    await sleep(100);
    // From the first command sent (its requestedAt) to the last outcome seen: a burst of late answers
    // does not read as a rate above the generator's.
    const spanMs = Math.max(1, lastSeenMs - Math.min(firstRequestedMs, lastSeenMs));
    return {
      label,
      targetPerSecond: Math.round(ratePerSecond),
      sentPerSecond: load.ratePerSecond,
      answeredPerSecond: Math.round((answered * 1000) / spanMs),
      visible: visible.summary(),
      decided: decided.summary(),
      missing: Math.max(0, expected - answered),
    };
  } finally {
    await generator.child.stop(5000);
    await reader.stop();
  }
}

export function describeLatency(result: LatencyResult): string {
  const v = result.visible;
  return `${v.p50Ms} / ${v.p99Ms} / ${v.p999Ms} ms (max ${v.maxMs}, n=${v.count}, ${round(result.answeredPerSecond, 0)}/s answered)`;
}
