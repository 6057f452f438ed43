// The load generator's pure parts: reproducible workloads, skew, option errors.
import { describe, expect, it } from 'vitest';
import {
  LoadOptionsError,
  parseDuration,
  parseSkew,
  resolveLoadOptions,
  Workload,
  accountPicker,
  seededRandom,
  formatMinor,
} from '../../../src/load/index.ts';

const base = { brokers: ['127.0.0.1:9092'], topic: 'in', accounts: 100, count: 10 };

function shapes(seed: number, invalidRatio: number): string[] {
  const workload = new Workload(resolveLoadOptions({ ...base, seed, invalidRatio, runId: 'r' }));
  return Array.from({ length: 500 }, () => {
    const m = workload.next();
    return `${m.kind} ${m.key} ${m.value.replace(/"requestedAt":"[^"]+"/, '')}`;
  });
}

describe('load workload', () => {
  it('should generate the same commands when given the same seed', () => {
    expect(shapes(7, 0.3)).toEqual(shapes(7, 0.3));
    expect(shapes(7, 0.3)).not.toEqual(shapes(8, 0.3));
  });

  it('should send only valid transfers between distinct accounts when the invalid share is 0', () => {
    const workload = new Workload(resolveLoadOptions({ ...base, seed: 1 }));
    for (let i = 0; i < 2000; i++) {
      const m = workload.next();
      const value = JSON.parse(m.value) as Record<string, string>;
      expect(m.kind).toBe('transfer');
      expect(value['from']).toBe(m.key);
      expect(value['to']).not.toBe(value['from']);
      expect(value['amount']).toMatch(/^[0-9]{1,2}\.[0-9]{2}$/);
    }
  });

  it('should concentrate choices on the first ranks when the skew is zipf', () => {
    const pick = accountPicker(seededRandom(1), 1000, { kind: 'zipf', exponent: 1.1 });
    const counts = new Array<number>(1000).fill(0);
    for (let i = 0; i < 100_000; i++) counts[pick()]!++;
    const top10 = counts.slice(0, 10).reduce((a, b) => a + b, 0);
    expect(top10 / 100_000).toBeGreaterThan(0.35);
    expect(counts[0]!).toBeGreaterThan(counts[99]! * 50);
  });

  it('should name the option when an option is invalid', () => {
    expect(() => resolveLoadOptions({ ...base, count: undefined })).toThrow(LoadOptionsError);
    expect(() => resolveLoadOptions({ ...base, invalidRatio: 2 })).toThrow(/invalidRatio/);
    expect(() => parseSkew('pareto')).toThrow(/skew/);
    expect(parseSkew('zipf:1.1')).toEqual({ kind: 'zipf', exponent: 1.1 });
    expect(parseDuration('duration', '2m')).toBe(120_000);
    expect(parseDuration('duration', '500ms')).toBe(500);
  });

  it('should format minor units as two-decimal strings when amounts are built', () => {
    expect(formatMinor(1n)).toBe('0.01');
    expect(formatMinor(1234n)).toBe('12.34');
    expect(formatMinor(100n)).toBe('1.00');
  });
});
