// A count sampled over time (outcomes seen, rows written), and the rates read from it.

export interface RateSummary {
  count: number;
  /** From the first sample with progress to the last one with progress. */
  overallPerSecond: number;
  /** Between the samples where 10% and 90% of the final count were reached: start-up and tail excluded. */
  sustainedPerSecond: number;
  durationS: number;
  /** CPU cores the measured process used over the sustained window, when sampled. */
  cpuCores?: number;
  /** CPU cores the local broker used over the same window, when it runs here. */
  brokerCpuCores?: number;
  /** The count reached at the end of each second from the start of the work. */
  timeline: number[];
}

interface Sample {
  atMs: number;
  count: number;
  cpuSeconds: number | undefined;
  brokerCpuSeconds: number | undefined;
}

export class RateSeries {
  readonly #samples: Sample[] = [];

  add(atMs: number, count: number, cpuSeconds?: number, brokerCpuSeconds?: number): void {
    this.#samples.push({ atMs, count, cpuSeconds, brokerCpuSeconds });
  }

  get last(): number {
    return this.#samples.at(-1)?.count ?? 0;
  }

  summary(): RateSummary {
    const samples = this.#samples;
    const final = this.last;
    const firstMoving = samples.findIndex((s) => s.count > 0);
    const lastMoving = samples.findIndex((s) => s.count >= final);
    if (final === 0 || firstMoving < 0)
      return { count: 0, overallPerSecond: 0, sustainedPerSecond: 0, durationS: 0, timeline: [] };
    // The sample before the first progress bounds when the work started.
    const start = samples[Math.max(0, firstMoving - 1)]!;
    const end = samples[lastMoving]!;
    const low = samples.find((s) => s.count >= final * 0.1)!;
    const high = samples.find((s) => s.count >= final * 0.9)!;
    const summary: RateSummary = {
      count: final,
      overallPerSecond: perSecond(end.count - start.count, end.atMs - start.atMs),
      sustainedPerSecond:
        high.atMs > low.atMs
          ? perSecond(high.count - low.count, high.atMs - low.atMs)
          : perSecond(end.count - start.count, end.atMs - start.atMs),
      durationS: round((end.atMs - start.atMs) / 1000, 2),
      timeline: this.#timeline(start.atMs, end.atMs),
    };
    if (low.cpuSeconds !== undefined && high.cpuSeconds !== undefined && high.atMs > low.atMs) {
      summary.cpuCores = round((high.cpuSeconds - low.cpuSeconds) / ((high.atMs - low.atMs) / 1000), 2);
    }
    if (low.brokerCpuSeconds !== undefined && high.brokerCpuSeconds !== undefined && high.atMs > low.atMs) {
      summary.brokerCpuCores = round(
        (high.brokerCpuSeconds - low.brokerCpuSeconds) / ((high.atMs - low.atMs) / 1000),
        2,
      );
    }
    return summary;
  }

  #timeline(fromMs: number, toMs: number): number[] {
    const out: number[] = [];
    for (let at = fromMs + 1000; at < toMs + 1000; at += 1000) {
      out.push([...this.#samples].reverse().find((s) => s.atMs <= at)?.count ?? 0);
    }
    return out;
  }
}

function perSecond(count: number, ms: number): number {
  return ms > 0 ? Math.round((count * 1000) / ms) : 0;
}

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` every intervalMs until it returns true or timeoutMs passes; returns whether it succeeded. */
export async function pollUntil(
  probe: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return true;
    await sleep(intervalMs);
  }
  return probe();
}
