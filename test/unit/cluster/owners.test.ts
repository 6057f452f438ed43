import { describe, expect, it } from 'vitest';
import { type InstanceRecord, ownerAmong, parseRecord } from '../../../src/cluster/directory-records.ts';

const record = (instanceId: string, generation: number, partitions: number[]): InstanceRecord => ({
  instanceId,
  url: `http://${instanceId}:8080`,
  generation,
  partitions,
  state: 'RUNNING',
  at: '2025-01-01T00:00:00.000Z',
});

describe('ownerAmong', () => {
  it('should name the instance with the newest generation when a stale claim remains', () => {
    const records = [record('a', 5, [0, 1, 2, 3]), record('b', 6, [2, 3]), record('c', 6, [0])];

    expect(ownerAmong(records, 0, 100)?.instanceId).toBe('c');
    expect(ownerAmong(records, 1, 100)?.instanceId).toBe('a');
    expect(ownerAmong(records, 3, 100)).toEqual({ instanceId: 'b', url: 'http://b:8080' });
  });

  it('should name nobody when two instances claim a partition in the same generation or nobody claims it', () => {
    const records = [record('a', 7, [0]), record('b', 7, [0])];

    expect(ownerAmong(records, 0, 100)).toBeUndefined();
    expect(ownerAmong(records, 1, 100)).toBeUndefined();
  });
});

describe('parseRecord', () => {
  it('should reject a record when its url is not http or its partitions are not integers', () => {
    const good = record('a', 1, [0]);

    expect(parseRecord(Buffer.from(JSON.stringify(good)))).toEqual(good);
    expect(parseRecord(Buffer.from(JSON.stringify({ ...good, url: 'file:///etc/passwd' })))).toBeUndefined();
    expect(parseRecord(Buffer.from(JSON.stringify({ ...good, partitions: ['0'] })))).toBeUndefined();
    expect(parseRecord(Buffer.from('not json'))).toBeUndefined();
  });

  it('should read the standby partitions when present, and records of earlier versions without them', () => {
    const withStandby = { ...record('a', 1, [0]), standby: [2, 3] };

    expect(parseRecord(Buffer.from(JSON.stringify(withStandby)))).toEqual(withStandby);
    expect(parseRecord(Buffer.from(JSON.stringify(record('a', 1, [0]))))?.standby).toBeUndefined();
    expect(parseRecord(Buffer.from(JSON.stringify({ ...withStandby, standby: [-1] })))).toBeUndefined();
    expect(parseRecord(Buffer.from(JSON.stringify({ ...withStandby, standby: 'all' })))).toBeUndefined();
  });
});
