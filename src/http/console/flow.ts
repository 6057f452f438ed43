// The console's flow view (issue 24): a small in-memory ring of rates sampled from this instance's
// prom-client registry every few seconds, so that a page opened during an incident shows the last minutes
// at once. Counters are read by metric name (the registry is the one /metrics serves), and a rate is the
// difference between two samples; latency quantiles come from the histogram's bucket differences, the way
// Prometheus' histogram_quantile() reads them.
import type { Registry } from 'prom-client';

export const SAMPLE_INTERVAL_MS = 2000;
/** 5 minutes of samples. */
export const SAMPLES_MAX = 150;

/** The API routes that send a command (counted as commands/s when answered with 2xx). */
const COMMAND_ROUTES = new Set([
  '/v1/transfers',
  '/v1/deposits',
  '/v1/withdrawals',
  '/v1/accounts',
  '/v1/accounts/:id/close',
]);

export interface FlowSample {
  /** Epoch ms of the sample. */
  t: number;
  /** Commands accepted by this instance's API (2xx on the command routes), per second. */
  commandsPerS: number;
  /** Input records (commands and credit legs) processed and committed by this instance's tasks, per second. */
  recordsPerS: number;
  /** Outcomes seen on the outcome topics by this instance, per second, by code ("completed" or a failure code). */
  outcomesPerS: Record<string, number>;
  commitsPerS: number;
  /** Mean commit duration over the interval (null without commits). */
  commitMsAvg: number | null;
  /** End-to-end latency (command requestedAt to outcome completedAt) over the interval; null without outcomes. */
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  /** Consumer lag of this instance's running tasks, by partition (records). */
  lag: Record<string, number>;
  /** Rows the Postgres sink of this instance inserted, per second (null without a sink). */
  sinkRowsPerS: number | null;
  /** Committed records the sink has not written yet, summed over its partitions (null without a sink). */
  sinkLag: number | null;
}

/** What one sample reads besides the registry. */
export interface FlowSources {
  registry: Registry;
  lag(): Array<{ partition: number; records: number }>;
  sink?: { rowsWritten(): number; lag(): number } | undefined;
  now?: () => number;
}

interface Totals {
  t: number;
  commands: number;
  records: number;
  outcomes: Map<string, number>;
  commits: number;
  commitSeconds: number;
  commitCount: number;
  latencyBuckets: Map<number, number>;
  sinkRows: number | null;
}

type MetricValue = { value: number; labels: Record<string, string | number>; metricName?: string };

export class FlowRing {
  readonly #sources: FlowSources;
  readonly #samples: FlowSample[] = [];
  #last: Totals | undefined;
  #timer: NodeJS.Timeout | undefined;
  #sampling: Promise<void> | undefined;

  constructor(sources: FlowSources) {
    this.#sources = sources;
  }

  /** Samples now and then every SAMPLE_INTERVAL_MS (the timer does not keep the process alive). */
  start(): void {
    if (this.#timer) return;
    void this.sample();
    this.#timer = setInterval(() => void this.sample(), SAMPLE_INTERVAL_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  samples(): FlowSample[] {
    return [...this.#samples];
  }

  /** One sample (the first one only sets the baseline). Never throws: a failed read skips the sample. */
  sample(): Promise<void> {
    this.#sampling ??= this.#sample()
      .catch(() => undefined)
      .finally(() => (this.#sampling = undefined));
    return this.#sampling;
  }

  async #sample(): Promise<void> {
    const totals = await this.#totals();
    const last = this.#last;
    this.#last = totals;
    if (!last || totals.t <= last.t) return;
    const seconds = (totals.t - last.t) / 1000;
    const rate = (now: number, before: number) => Math.max(0, now - before) / seconds;
    const outcomesPerS: Record<string, number> = {};
    for (const [code, count] of totals.outcomes) outcomesPerS[code] = rate(count, last.outcomes.get(code) ?? 0);
    const commitCount = totals.commitCount - last.commitCount;
    const latency = bucketDelta(totals.latencyBuckets, last.latencyBuckets);
    const lag: Record<string, number> = {};
    for (const { partition, records } of this.#sources.lag()) lag[String(partition)] = records;
    const sink = this.#sources.sink;
    this.#samples.push({
      t: totals.t,
      commandsPerS: rate(totals.commands, last.commands),
      recordsPerS: rate(totals.records, last.records),
      outcomesPerS,
      commitsPerS: rate(totals.commits, last.commits),
      commitMsAvg: commitCount > 0 ? ((totals.commitSeconds - last.commitSeconds) / commitCount) * 1000 : null,
      latencyP50Ms: quantileMs(latency, 0.5),
      latencyP99Ms: quantileMs(latency, 0.99),
      lag,
      sinkRowsPerS: totals.sinkRows === null || last.sinkRows === null ? null : rate(totals.sinkRows, last.sinkRows),
      sinkLag: sink ? sink.lag() : null,
    });
    if (this.#samples.length > SAMPLES_MAX) this.#samples.splice(0, this.#samples.length - SAMPLES_MAX);
  }

  async #totals(): Promise<Totals> {
    const t = (this.#sources.now ?? Date.now)();
    const [http, records, outcomes, commits, commitDuration, latency] = await Promise.all(
      [
        'bankstream_http_request_duration_seconds',
        'bankstream_streams_records_processed_total',
        'bankstream_outcomes_total',
        'bankstream_streams_commits_total',
        'bankstream_streams_commit_duration_seconds',
        'bankstream_end_to_end_latency_seconds',
      ].map((name) => this.#values(name)),
    );
    let commands = 0;
    for (const v of http!)
      if (
        v.metricName?.endsWith('_count') &&
        v.labels['method'] === 'POST' &&
        COMMAND_ROUTES.has(String(v.labels['route'])) &&
        String(v.labels['status']).startsWith('2')
      )
        commands += v.value;
    const byCode = new Map<string, number>();
    for (const v of outcomes!) {
      const code = String(v.labels['code'] ?? v.labels['result'] ?? 'unknown');
      byCode.set(code, (byCode.get(code) ?? 0) + v.value);
    }
    const buckets = new Map<number, number>();
    for (const v of latency!) {
      if (!v.metricName?.endsWith('_bucket')) continue;
      const le = v.labels['le'] === '+Inf' ? Number.POSITIVE_INFINITY : Number(v.labels['le']);
      buckets.set(le, (buckets.get(le) ?? 0) + v.value);
    }
    return {
      t,
      commands,
      records: sum(records!),
      outcomes: byCode,
      commits: sum(commits!),
      commitSeconds: sum(commitDuration!.filter((v) => v.metricName?.endsWith('_sum'))),
      commitCount: sum(commitDuration!.filter((v) => v.metricName?.endsWith('_count'))),
      latencyBuckets: buckets,
      sinkRows: this.#sources.sink ? this.#sources.sink.rowsWritten() : null,
    };
  }

  async #values(name: string): Promise<MetricValue[]> {
    const metric = this.#sources.registry.getSingleMetric(name);
    if (!metric) return [];
    return ((await metric.get()).values ?? []) as MetricValue[];
  }
}

function sum(values: MetricValue[]): number {
  return values.reduce((total, v) => total + v.value, 0);
}

/** Cumulative bucket counts of the interval: (upper bound, count ≤ bound), ascending by bound. */
function bucketDelta(now: Map<number, number>, before: Map<number, number>): Array<[number, number]> {
  return [...now]
    .map(([le, count]): [number, number] => [le, Math.max(0, count - (before.get(le) ?? 0))])
    .sort((a, b) => a[0] - b[0]);
}

/**
 * The q-quantile in ms, interpolated linearly inside its bucket (histogram_quantile's rule); a quantile in
 * the +Inf bucket is the highest finite bound. Null when the interval saw nothing.
 */
export function quantileMs(buckets: Array<[number, number]>, q: number): number | null {
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Number.POSITIVE_INFINITY) return lowerBound * 1000;
      const inBucket = count - lowerCount;
      const fraction = inBucket > 0 ? (rank - lowerCount) / inBucket : 1;
      return (lowerBound + (le - lowerBound) * fraction) * 1000;
    }
    lowerBound = le;
    lowerCount = count;
  }
  return lowerBound * 1000;
}
