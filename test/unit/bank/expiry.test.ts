import { describe, expect, test } from 'vitest';
import { DedupExpiry } from '../../../src/bank/expiry.ts';
import { type TransferEntry } from '../../../src/bank/stores.ts';
import { MapStore } from './harness.ts';

function store(count: number, decidedAt: number, status: TransferEntry['status'] = 'completed'): MapStore<TransferEntry> {
  const s = new MapStore<TransferEntry>('transfers');
  for (let i = 0; i < count; i++) s.put(`t-${String(i).padStart(4, '0')}`, { fingerprint: 'f', status, decidedAt });
  return s;
}

describe('DedupExpiry', () => {
  test('should delete at most deletionsMax entries per run and resume after them when there are more', async () => {
    const s = store(25, 0);
    const expiry = new DedupExpiry(s, { retentionMs: 100, deletionsMax: 10, scannedMax: 1_000 });
    expect(await expiry.run(100)).toBe(10);
    expect(s.rows.size).toBe(15);
    expect(await expiry.run(100)).toBe(10);
    expect(await expiry.run(100)).toBe(5);
    expect(s.rows.size).toBe(0);
  });

  test('should scan at most scannedMax entries per run and wrap around when it reaches the end', async () => {
    const s = store(10, 50);
    s.put('t-0003', { fingerprint: 'f', status: 'failed', decidedAt: 0 });
    s.put('t-0008', { fingerprint: 'f', status: 'failed', decidedAt: 0 });
    const expiry = new DedupExpiry(s, { retentionMs: 100, deletionsMax: 100, scannedMax: 5 });
    expect(await expiry.run(100)).toBe(1);
    expect(s.rows.has('t-0003')).toBe(false);
    expect(await expiry.run(100)).toBe(1);
    expect(s.rows.has('t-0008')).toBe(false);
    expect(await expiry.run(150)).toBe(0);
    expect(await expiry.run(150)).toBe(5);
  });

  test('should keep in-flight entries and entries younger than the retention when they are scanned', async () => {
    const s = store(3, 0, 'in_flight');
    s.put('young', { fingerprint: 'f', status: 'completed', decidedAt: 50 });
    const expiry = new DedupExpiry(s, { retentionMs: 100, deletionsMax: 100, scannedMax: 100 });
    expect(await expiry.run(149)).toBe(0);
    expect(s.rows.size).toBe(4);
    expect(await expiry.run(150)).toBe(1);
    expect([...s.rows.keys()].sort()).toEqual(['t-0000', 't-0001', 't-0002']);
  });
});
