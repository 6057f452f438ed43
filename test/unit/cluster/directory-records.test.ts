import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clusterKeysFromSecret } from '../../../src/config/cluster-key.ts';
import {
  type InstanceRecord,
  newerThan,
  openRecordValue,
  openTombstoneHeader,
  ownerAmong,
  signedRecordValue,
  signedTombstoneHeader,
} from '../../../src/cluster/directory-records.ts';

const keys = clusterKeysFromSecret('unit-test-cluster-secret-of-at-least-32-chars');
const record = (instanceId: string, generation: number, partitions: number[]): InstanceRecord => ({
  instanceId,
  url: `http://${instanceId}:8080`,
  generation,
  partitions,
  state: 'RUNNING',
  at: '2025-01-01T00:00:00.000Z',
});

describe('signed directory records', () => {
  it('should open a record when it was signed with the cluster key for its own instance id', () => {
    const good = record('a', 3, [0, 1]);

    expect(openRecordValue(keys, 'a', signedRecordValue(keys, good))).toEqual({ ok: true, record: good });
  });

  it('should reject a record when it is unsigned, signed with another key, tampered with or filed under another key', () => {
    const good = record('a', 3, [0, 1]);
    const envelope = JSON.parse(signedRecordValue(keys, good).toString('utf8')) as Record<string, string>;
    const tampered = { ...envelope, record: JSON.stringify({ ...good, url: 'http://evil.example:8080' }) };

    expect(openRecordValue(keys, 'a', Buffer.from(JSON.stringify(good)))).toEqual({ ok: false, reason: 'unsigned' });
    expect(
      openRecordValue(
        keys,
        'a',
        signedRecordValue(clusterKeysFromSecret('another-cluster-secret-of-at-least-32-chars!!', 'k2'), good),
      ),
    ).toEqual({ ok: false, reason: 'unknown_key' });
    expect(
      openRecordValue(
        keys,
        'a',
        signedRecordValue(clusterKeysFromSecret('another-cluster-secret-of-at-least-32-chars!!'), good),
      ),
    ).toEqual({ ok: false, reason: 'bad_mac' });
    expect(openRecordValue(keys, 'a', Buffer.from(JSON.stringify(tampered)))).toEqual({ ok: false, reason: 'bad_mac' });
    expect(openRecordValue(keys, 'b', signedRecordValue(keys, good))).toEqual({ ok: false, reason: 'bad_mac' });
    expect(openRecordValue(keys, 'a', Buffer.from('not json'))).toEqual({ ok: false, reason: 'malformed' });
  });

  it('should never open a value when it was not made by signedRecordValue (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.string({ maxLength: 40 }), (bytes, key) => {
        expect(openRecordValue(keys, key, Buffer.from(bytes)).ok).toBe(false);
      }),
      { numRuns: 500 },
    );
  });
});

describe('ownerAmong with the local generation', () => {
  it('should ignore a claim when its generation is beyond the one this instance is assigned in', () => {
    const records = [
      record('a', 5, [0, 1]),
      record('forged', Number.MAX_SAFE_INTEGER, [0, 1, 2, 3]),
      record('b', 6, [1]),
    ];

    expect(ownerAmong(records, 0, 6)?.instanceId).toBe('a');
    expect(ownerAmong(records, 1, 6)?.instanceId).toBe('b');
    expect(ownerAmong(records, 1, 5)?.instanceId).toBe('a');
    expect(ownerAmong(records, 2, 6)).toBeUndefined();
  });

  it('should name nobody when this instance has no assignment yet', () => {
    expect(ownerAmong([record('a', 1, [0])], 0, undefined)).toBeUndefined();
  });
});

describe('newerThan', () => {
  const at = (iso: string) => Date.parse(iso);
  const floor = { generation: 7, atMs: at('2025-01-01T00:01:00.000Z') };

  it('should accept a later generation, a later status of the same generation and a restarted instance claiming nothing', () => {
    expect(newerThan(record('a', 8, [0]), at('2025-01-01T00:00:30.000Z'), floor)).toBe(true);
    expect(newerThan(record('a', 7, []), at('2025-01-01T00:01:05.000Z'), floor)).toBe(true);
    expect(newerThan(record('a', -1, []), at('2025-01-01T00:02:00.000Z'), floor)).toBe(true);
  });

  it('should refuse a replayed record when it is older in generation or in time', () => {
    expect(newerThan(record('a', 6, [0, 1]), at('2025-01-01T00:00:00.000Z'), floor)).toBe(false);
    expect(newerThan(record('a', 6, [0, 1]), at('2025-01-01T00:05:00.000Z'), floor)).toBe(false);
    expect(newerThan(record('a', 7, [0]), at('2025-01-01T00:00:59.000Z'), floor)).toBe(false);
    expect(newerThan(record('a', -1, []), at('2025-01-01T00:00:00.000Z'), floor)).toBe(false);
  });
});

describe('signed tombstones', () => {
  it('should open a tombstone header it signed, whatever the key id and time hold', () => {
    const dotted = clusterKeysFromSecret('unit-test-cluster-secret-of-at-least-32-chars', 'k.2026.1');
    for (const k of [keys, dotted]) {
      const at = new Date('2026-12-02T01:11:41.123Z').toISOString();
      expect(openTombstoneHeader(k, 'a', signedTombstoneHeader(k, 'a', at))).toEqual({
        ok: true,
        atMs: Date.parse(at),
      });
    }
  });

  it('should reject a tombstone header when it is missing, names another instance or is tampered with', () => {
    const header = signedTombstoneHeader(keys, 'a', '2026-12-02T01:11:41.123Z');
    expect(openTombstoneHeader(keys, 'a', undefined)).toEqual({ ok: false, reason: 'unsigned' });
    expect(openTombstoneHeader(keys, 'b', header).ok).toBe(false);
    const later = Buffer.from(header.toString('utf8').replace('01:11:41', '01:11:42'), 'utf8');
    expect(openTombstoneHeader(keys, 'a', later).ok).toBe(false);
    expect(openTombstoneHeader(keys, 'a', Buffer.from('k1 abc', 'utf8'))).toEqual({ ok: false, reason: 'malformed' });
  });
});
