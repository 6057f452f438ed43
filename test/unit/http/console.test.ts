// The console's pure parts (issue 24): latency quantiles from histogram buckets, the flow ring's rates from a
// real prom-client registry, the partition grid from directory claims, and the previews of dead letters.
import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { type DirectoryClaim, type LocalStatus, clusterView } from '../../../src/http/console/cluster.ts';
import { preview } from '../../../src/http/console/dead-letters.ts';
import { FlowRing, SAMPLES_MAX, quantileMs } from '../../../src/http/console/flow.ts';

const BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Cumulative buckets (as prom-client reports them) from per-bucket counts, +Inf last. */
function cumulative(counts: number[]): Array<[number, number]> {
  let total = 0;
  const buckets: Array<[number, number]> = BOUNDS.map((le, i) => [le, (total += counts[i] ?? 0)]);
  buckets.push([Number.POSITIVE_INFINITY, total + (counts[BOUNDS.length] ?? 0)]);
  return buckets;
}

describe('quantileMs', () => {
  it('should be null without observations and interpolate inside the bucket that holds the rank', () => {
    expect(quantileMs(cumulative([]), 0.5)).toBeNull();
    // 10 observations all in (0.01, 0.025]: the median is half-way through that bucket.
    const counts = new Array(BOUNDS.length + 1).fill(0);
    counts[2] = 10;
    expect(quantileMs(cumulative(counts), 0.5)).toBeCloseTo(17.5, 6);
    // Everything above the last bound: the highest finite bound, not infinity.
    const high = new Array(BOUNDS.length + 1).fill(0);
    high[BOUNDS.length] = 3;
    expect(quantileMs(cumulative(high), 0.99)).toBe(60_000);
  });

  it('should stay within the bounds of the observations and grow with q (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat(1000), { minLength: BOUNDS.length + 1, maxLength: BOUNDS.length + 1 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (counts, a, b) => {
          const buckets = cumulative(counts);
          const total = buckets.at(-1)![1];
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const qLo = quantileMs(buckets, lo);
          const qHi = quantileMs(buckets, hi);
          if (total === 0) return qLo === null && qHi === null;
          return qLo !== null && qHi !== null && qLo >= 0 && qHi <= 60_000 && qLo <= qHi + 1e-9;
        },
      ),
    );
  });
});

describe('FlowRing', () => {
  it('should turn counter differences between two samples into per-second rates, by outcome code', async () => {
    const registry = new Registry();
    const records = new Counter({
      name: 'bankstream_streams_records_processed_total',
      help: 'h',
      registers: [registry],
    });
    const outcomes = new Counter({
      name: 'bankstream_outcomes_total',
      help: 'h',
      labelNames: ['result', 'code'],
      registers: [registry],
    });
    const latency = new Histogram({
      name: 'bankstream_end_to_end_latency_seconds',
      help: 'h',
      labelNames: ['result'],
      buckets: BOUNDS,
      registers: [registry],
    });
    let now = 1_000_000;
    let rows = 0;
    const ring = new FlowRing({
      registry,
      lag: () => [{ partition: 2, records: 7 }],
      sink: { rowsWritten: () => rows, lag: () => 3 },
      now: () => now,
    });
    await ring.sample(); // baseline
    expect(ring.samples()).toEqual([]);
    records.inc(40);
    outcomes.inc({ result: 'completed', code: 'completed' }, 10);
    outcomes.inc({ result: 'failed', code: 'insufficient_funds' }, 4);
    for (let i = 0; i < 10; i++) latency.observe({ result: 'completed' }, 0.02);
    rows = 30;
    now += 2000;
    await ring.sample();
    const [sample] = ring.samples();
    expect(sample).toMatchObject({
      t: now,
      commandsPerS: 0,
      recordsPerS: 20,
      outcomesPerS: { completed: 5, insufficient_funds: 2 },
      commitsPerS: 0,
      commitMsAvg: null,
      lag: { '2': 7 },
      sinkRowsPerS: 15,
      sinkLag: 3,
    });
    expect(sample!.latencyP50Ms).toBeGreaterThan(10);
    expect(sample!.latencyP50Ms).toBeLessThanOrEqual(25);
    // Nothing new: zero rates, no latency.
    now += 2000;
    await ring.sample();
    expect(ring.samples()[1]).toMatchObject({ recordsPerS: 0, outcomesPerS: { completed: 0 }, latencyP50Ms: null });
  });

  it('should keep at most SAMPLES_MAX samples, the newest', async () => {
    let now = 0;
    const ring = new FlowRing({ registry: new Registry(), lag: () => [], now: () => (now += 2000) });
    for (let i = 0; i < SAMPLES_MAX + 11; i++) await ring.sample();
    const samples = ring.samples();
    expect(samples).toHaveLength(SAMPLES_MAX);
    expect(samples.at(-1)!.t).toBe(now);
    expect(samples[0]!.sinkRowsPerS).toBeNull();
  });
});

describe('clusterView', () => {
  const claim = (
    instanceId: string,
    generation: number,
    partitions: number[],
    standby: number[] = [],
  ): DirectoryClaim => ({
    instanceId,
    url: `http://${instanceId}:8080`,
    generation,
    partitions,
    state: 'RUNNING',
    standby,
    at: '2026-01-01T00:00:00.000Z',
  });
  const local = (over: Partial<LocalStatus> = {}): LocalStatus => ({
    instanceId: 'a',
    state: 'RUNNING',
    generationId: 2,
    assigned: [0, 1],
    running: [0, 1],
    standby: [],
    stopped: [],
    ...over,
  });

  it('should show each partition on the instance of the newest generation that runs it, with its standbys and local lag', () => {
    const view = clusterView(4, [claim('b', 2, [2, 3], [0]), claim('a', 2, [0, 1], [2])], local(), [
      { partition: 0, records: 5 },
    ]);
    expect(view.generation).toBe(2);
    expect(view.instances.map((i) => i.instanceId)).toEqual(['a', 'b']);
    expect(view.grid).toEqual([
      { partition: 0, state: 'running', owner: 'a', standbys: ['b'], lag: 5 },
      { partition: 1, state: 'running', owner: 'a', standbys: [], lag: null },
      { partition: 2, state: 'running', owner: 'b', standbys: ['a'], lag: null },
      { partition: 3, state: 'running', owner: 'b', standbys: [], lag: null },
    ]);
  });

  it('should call a partition moving when only an older generation claims it, restoring when assigned here and not running, stopped when stopped here', () => {
    const view = clusterView(
      4,
      [claim('b', 2, [3]), claim('c', 1, [2, 3])],
      local({ generationId: 2, assigned: [0, 1], running: [1], stopped: [] }),
      [],
    );
    expect(view.grid.map((c) => [c.state, c.owner])).toEqual([
      ['restoring', 'a'],
      ['running', 'a'],
      ['moving', 'c'],
      ['running', 'b'],
    ]);
    const stopped = clusterView(
      1,
      [],
      local({ assigned: [0], running: [], stopped: [{ partition: 0, code: 'offsets_missing' }] }),
      [],
    );
    expect(stopped.grid[0]).toMatchObject({ state: 'stopped', owner: 'a' });
    const nobody = clusterView(1, [], local({ assigned: [], running: [], generationId: undefined }), []);
    expect(nobody).toMatchObject({ generation: null, grid: [{ state: 'moving', owner: null }] });
  });
});

describe('preview', () => {
  it('should show text as text, anything else as hex, both cut to 200 characters', () => {
    expect(preview(null)).toBeNull();
    expect(preview(Buffer.from('acc-1'))).toBe('acc-1');
    expect(preview(Buffer.from([0xff, 0x00, 0x41]))).toBe('0xff0041');
    expect(preview(Buffer.from('x'.repeat(500)))).toBe(`${'x'.repeat(200)}…`);
    expect(preview(Buffer.alloc(300, 0x01))!.length).toBe(201);
  });
});
