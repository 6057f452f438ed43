// The broker log walk of the bench (bench/log-segments.ts): record batches as the client encodes them
// (v2, what the broker stores), control batches counted as markers, a batch cut off at the end left out.
import { mkdtemp, rm, writeFile, appendFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRecordsBatch } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { emptyTally, snapshotSegments, tallyBatches, tallySince, topicOfFolder } from '../../../bench/log-segments.ts';

function batch(count: number, valueBytes = 10): Buffer {
  const messages = Array.from({ length: count }, (_, i) => ({
    key: Buffer.from(`k${i}`),
    value: Buffer.alloc(valueBytes, 1),
    topic: 't',
    partition: 0,
  }));
  return createRecordsBatch(messages, {}).buffer;
}

/** A control batch: the same header with attributes bit 5 (control) and one record (the marker). */
function marker(): Buffer {
  const b = Buffer.from(batch(1));
  b.writeInt16BE(b.readInt16BE(21) | 0x30, 21);
  return b;
}

describe('tallyBatches', () => {
  it('counts records, batches and stored bytes of consecutive batches', () => {
    const a = batch(3);
    const b = batch(5, 100);
    const t = tallyBatches(Buffer.concat([a, b]));
    expect(t).toEqual({ records: 8, markers: 0, batches: 2, bytes: a.length + b.length });
  });

  it('counts control batches as markers, not records', () => {
    const t = tallyBatches(Buffer.concat([batch(2), marker()]));
    expect(t.records).toBe(2);
    expect(t.markers).toBe(1);
    expect(t.batches).toBe(2);
  });

  it('leaves out a batch cut off at the end, and an empty buffer is nothing', () => {
    const whole = batch(4);
    const cut = batch(7).subarray(0, 70);
    expect(tallyBatches(Buffer.concat([whole, cut]))).toEqual({
      records: 4,
      markers: 0,
      batches: 1,
      bytes: whole.length,
    });
    expect(tallyBatches(Buffer.alloc(0))).toEqual(emptyTally());
  });

  it('refuses bytes that are not v2 batches', () => {
    const b = Buffer.from(batch(1));
    b.writeInt8(1, 16);
    expect(() => tallyBatches(b)).toThrow(/not a v2 record batch/);
  });
});

describe('segment snapshots', () => {
  it('tallies only what was appended after the snapshot, per topic, new segments from their start', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-segments-'));
    try {
      await mkdir(path.join(dir, 'app-out-0'));
      await mkdir(path.join(dir, 'app-out-1'));
      await mkdir(path.join(dir, 'other-0'));
      await writeFile(path.join(dir, 'app-out-0', '00000000000000000000.log'), batch(10));
      await writeFile(path.join(dir, 'other-0', '00000000000000000000.log'), batch(10));
      const before = await snapshotSegments(dir, ['app-out']);
      await appendFile(path.join(dir, 'app-out-0', '00000000000000000000.log'), Buffer.concat([batch(2), marker()]));
      await writeFile(path.join(dir, 'app-out-1', '00000000000000000000.log'), batch(3));
      await appendFile(path.join(dir, 'other-0', '00000000000000000000.log'), batch(50));
      const tallies = await tallySince(dir, ['app-out'], before);
      expect([...tallies.keys()]).toEqual(['app-out']);
      expect(tallies.get('app-out')).toMatchObject({ records: 5, markers: 1, batches: 3 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads the topic out of a partition folder name', () => {
    expect(topicOfFolder('bench1-balances-changelog-11')).toBe('bench1-balances-changelog');
    expect(topicOfFolder('__consumer_offsets-3')).toBe('__consumer_offsets');
    expect(topicOfFolder('meta.properties')).toBeUndefined();
  });
});
