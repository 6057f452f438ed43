// Latency histograms (HdrHistogram, dependency: hdr-histogram-js), in milliseconds.
import type { Histogram } from 'hdr-histogram-js';

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}

export interface LatencyHistogram {
  record(ms: number): void;
  summary(): LatencySummary;
}

/** Up to one hour at 3 significant digits; loaded on demand so the CLI starts without the bench's deps. */
export async function createLatencyHistogram(): Promise<LatencyHistogram> {
  let hdr: typeof import('hdr-histogram-js');
  try {
    hdr = await import('hdr-histogram-js');
  } catch (error) {
    throw new Error('the bench needs hdr-histogram-js: npm install hdr-histogram-js', { cause: error });
  }
  const histogram: Histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000,
    numberOfSignificantValueDigits: 3,
    autoResize: true,
  });
  return {
    record(ms) {
      histogram.recordValue(Math.max(0, Math.round(ms)));
    },
    summary() {
      const count = histogram.totalCount;
      const at = (p: number) => (count === 0 ? 0 : histogram.getValueAtPercentile(p));
      return {
        count,
        p50Ms: at(50),
        p99Ms: at(99),
        p999Ms: at(99.9),
        maxMs: count === 0 ? 0 : histogram.maxValue,
        meanMs: Math.round(histogram.mean * 10) / 10,
      };
    },
  };
}
