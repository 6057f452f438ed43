// The bench's pure logic (not its timings): ProducerPerformance's summary, rawNormalized and the other
// same-run ratios, the latency curve's rates, the per-topic writes per command, the README section.
import { describe, expect, it } from 'vitest';
import { curveRates } from '../../../bench/phases/latency.ts';
import { topicRole, writesPerCommand } from '../../../bench/phases/writes.ts';
import { parseProducerPerformance, rawNormalized } from '../../../bench/producer-perf.ts';
import { SECTION_END, SECTION_START, spliceSection } from '../../../bench/readme-section.ts';
import { type BenchResults, deriveRatios } from '../../../bench/report.ts';
import type { RateSummary } from '../../../bench/series.ts';

const TOOL_OUTPUT = `[2026-12-02 06:21:02] WARN something from log4j
1406 records sent, 281.0 records/sec (0.05 MB/sec), 20.1 ms avg latency, 300.0 ms max latency.
300000 records sent, 78247.3 records/sec (14.92 MB/sec), 130.52 ms avg latency, 676.00 ms max latency, 77 ms 50th, 399 ms 95th, 578 ms 99th, 615 ms 99.9th.
`;

describe('ProducerPerformance summary', () => {
  it('reads the final line, not the periodic ones', () => {
    expect(parseProducerPerformance(TOOL_OUTPUT)).toEqual({
      records: 300000,
      recordsPerSecond: 78247,
      mbPerSecond: 14.92,
      avgLatencyMs: 130.52,
      maxLatencyMs: 676,
      p50Ms: 77,
      p95Ms: 399,
      p99Ms: 578,
      p999Ms: 615,
    });
  });

  it('says so when the tool printed no summary', () => {
    expect(() => parseProducerPerformance('Exception in thread "main" org.apache.kafka...')).toThrow(
      /no ProducerPerformance summary/,
    );
  });
});

describe('rawNormalized', () => {
  it('is commands/s per raw record/s, to 4 significant digits', () => {
    expect(rawNormalized(13_600, 316_000)).toBe(0.04304);
    expect(rawNormalized(25_280, 316_000)).toBe(0.08);
    expect(rawNormalized(0, 316_000)).toBe(0);
  });

  it('is undefined without a raw rate', () => {
    expect(rawNormalized(13_600, 0)).toBeUndefined();
    expect(rawNormalized(13_600, Number.NaN)).toBeUndefined();
  });
});

function rate(sustainedPerSecond: number, cpuCores?: number): RateSummary {
  return { count: 1, overallPerSecond: sustainedPerSecond, sustainedPerSecond, durationS: 1, cpuCores, timeline: [] };
}

describe('deriveRatios', () => {
  it('derives rawNormalized, CPU µs per command, the scale and baseline ratios from one run', () => {
    const results = {
      rawRecordsPerSecond: 300_000,
      engine: { ...rate(15_000, 1.2), transfers: 1, completed: 1, failed: 0, startS: 1, timedOut: false },
      scale: { ...rate(27_000), instances: 2, transfers: 1, timedOut: false },
      baseline: { perSecond: 500 },
    } as unknown as BenchResults;
    deriveRatios(results);
    expect(results.rawNormalized).toBe(0.05);
    expect(results.engineCpuMicrosPerCommand).toBe(80);
    expect(results.scaleRatio).toBe(1.8);
    expect(results.ratio).toBe(30);
  });

  it('leaves out what a failed phase did not measure', () => {
    const results = { engine: { ...rate(15_000), transfers: 1 } } as unknown as BenchResults;
    deriveRatios(results);
    expect(results.rawNormalized).toBeUndefined();
    expect(results.engineCpuMicrosPerCommand).toBeUndefined();
    expect(results.scaleRatio).toBeUndefined();
  });
});

describe('curveRates', () => {
  it('takes the shares of the sustained rate, at least 1/s', () => {
    expect(curveRates(13_333, [0.1, 0.25, 0.5, 0.75])).toEqual([1333, 3333, 6667, 10000]);
    expect(curveRates(2, [0.1])).toEqual([1]);
  });
});

describe('writes per command', () => {
  const config = {
    appId: 'b1',
    topics: {
      input: 'b1-transaction_initiated',
      credits: 'b1-credits',
      completed: 'b1-transaction_completed',
      failed: 'b1-transaction_failed',
      audit: 'b1-audit_log',
      dlq: 'b1-transaction_initiated.dlq',
    },
  };

  it('names each topic by its role', () => {
    expect(topicRole('b1-credits', config)).toBe('legs');
    expect(topicRole('b1-balances-changelog', config)).toBe('changelog balances');
    expect(topicRole('b1-transaction_completed', config)).toBe('outputs (completed)');
    expect(topicRole('b1-instances', config)).toBe('instances');
    expect(topicRole('b1x2-balances-changelog', config)).toBe('other');
  });

  it('divides by the commands, sums the engine topics without the input, drops untouched topics', () => {
    const tally = (records: number, markers: number, bytes: number) => ({ records, markers, batches: 1, bytes });
    const result = writesPerCommand(
      new Map([
        ['b1-transaction_initiated', tally(1000, 0, 250_000)],
        ['b1-credits', tally(1700, 100, 300_000)],
        ['b1-transaction_completed', tally(1000, 50, 400_000)],
        ['b1-transaction_failed', tally(0, 0, 0)],
      ]),
      config,
      1000,
    );
    expect(result.byTopic.map((t) => t.role)).toEqual(['outputs (completed)', 'legs']);
    expect(result.total).toMatchObject({
      records: 2700,
      markers: 150,
      recordsPerCommand: 2.7,
      markersPerCommand: 0.15,
      bytesPerCommand: 700,
    });
    expect(result.input?.bytesPerCommand).toBe(250);
  });
});

describe('README section', () => {
  it('appends the section once, then replaces only its inside', () => {
    const first = spliceSection('# Benchmarks\n\ntext\n', 'run 1');
    expect(first).toBe(`# Benchmarks\n\ntext\n\n${SECTION_START}\n\nrun 1\n\n${SECTION_END}\n`);
    const second = spliceSection(`${first}\n## after\n`, 'run 2');
    expect(second).toContain('run 2');
    expect(second).not.toContain('run 1');
    expect(second.endsWith('## after\n')).toBe(true);
    expect(spliceSection(second, 'run 2')).toBe(second);
  });

  it('refuses a README with one marker only', () => {
    expect(() => spliceSection(`x\n${SECTION_START}\n`, 'run')).toThrow(/only one of the latest-run markers/);
  });
});
