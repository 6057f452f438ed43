// A local state folder counts as warm for placement only within an acceptable lag of its changelogs
// (Kafka Streams' acceptable.recovery.lag): the rule (assignor.ts), what the state cleaner measures
// on disk, and what the assignor then does with the member info.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import {
  decodeMemberInfo,
  encodeMemberInfo,
  localStateLagRecords,
  planAssignment,
  warmLocalPartitions,
} from '../../../src/runtime/assignor.ts';
import { StateDirectoryCleaner } from '../../../src/runtime/state-cleaner.ts';
import { LevelTaskStore } from '../../../src/stores/level-store.ts';
import { bufferSerde } from '../../../src/stores/serdes.ts';

const ACCEPTABLE = 10_000;

describe('localStateLagRecords', () => {
  test('should sum end minus checkpoint over the stores and count a store without checkpoint as wholly behind', () => {
    const ends = new Map([
      ['accounts', 500n],
      ['transfers', 20_000n],
    ]);
    expect(
      localStateLagRecords(
        new Map([
          ['accounts', 400n],
          ['transfers', 19_000n],
        ]),
        ends,
      ),
    ).toBe(1_100n);
    expect(
      localStateLagRecords(
        new Map([
          ['accounts', 500n],
          ['transfers', null],
        ]),
        ends,
      ),
    ).toBe(20_000n);
    expect(localStateLagRecords(new Map([['accounts', 500n]]), ends)).toBe(20_000n);
    // A checkpoint past the end (the changelog was recreated) is no warm copy either.
    expect(
      localStateLagRecords(
        new Map([
          ['accounts', 900n],
          ['transfers', 20_000n],
        ]),
        ends,
      ),
    ).toBe(500n);
  });

  test('should never be negative and be zero exactly when every store is at its end, whatever the offsets', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.bigInt({ min: 0n, max: 1n << 40n }), fc.option(fc.bigInt({ min: 0n, max: 1n << 40n }))), {
          maxLength: 4,
        }),
        (stores) => {
          const ends = new Map(stores.map(([end], i) => [`s${i}`, end]));
          const checkpoints = new Map(stores.map(([, checkpoint], i) => [`s${i}`, checkpoint]));
          const lag = localStateLagRecords(checkpoints, ends);
          expect(lag >= 0n).toBe(true);
          const atEnd = stores.every(([end, checkpoint]) => checkpoint === end || end === 0n);
          expect(lag === 0n).toBe(atEnd);
        },
      ),
    );
  });
});

describe('warmLocalPartitions', () => {
  test('should keep folders within the acceptable lag and those not measured, and drop the ones further behind', () => {
    const lags = new Map([
      [0, 0n],
      [1, 10_000n],
      [2, 10_001n],
    ]);
    expect(warmLocalPartitions([0, 1, 2, 3], lags, ACCEPTABLE)).toEqual([0, 1, 3]);
    expect(warmLocalPartitions([0, 1, 2], lags, 0)).toEqual([0]);
  });
});

describe('a far-behind folder at placement time', () => {
  let appDir: string;
  beforeEach(async () => {
    appDir = await mkdtemp(path.join(tmpdir(), 'bankstream-warm-'));
  });
  afterEach(async () => {
    await rm(appDir, { recursive: true, force: true });
  });

  async function folder(instance: string, partition: number, checkpoint: bigint): Promise<void> {
    const store = await LevelTaskStore.open(path.join(appDir, instance, String(partition), 'transfers'), {
      name: 'transfers',
      valueSerde: bufferSerde,
      logged: true,
      cacheEntriesMax: 0,
    });
    store.put('k', Buffer.from('v'));
    await store.flush(checkpoint);
    await store.close();
  }

  function cleaner(instanceId: string): StateDirectoryCleaner {
    return new StateDirectoryCleaner({
      appDir,
      instanceId,
      cleanupDelayMs: 600_000,
      recovery: {
        acceptableLagRecords: ACCEPTABLE,
        changelogEndOffsets: async () => new Map([['transfers', 50_000n]]),
      },
    });
  }

  test('should not be preferred by the assignor when another member has a warm folder of the partition', async () => {
    // "a" sorts first, so with both folders taken at face value it would get partition 0.
    await folder('a', 0, 100n);
    await folder('b', 0, 45_000n);
    const members = [];
    for (const instanceId of ['a', 'b']) {
      const measured = cleaner(instanceId);
      await measured.measureLocal(new Set());
      const info = { instanceId, active: [], standby: [], local: measured.warmLocal([0]) };
      members.push({ memberId: `m-${instanceId}`, info: decodeMemberInfo(`m-${instanceId}`, encodeMemberInfo(info)) });
    }
    expect(members.map((m) => m.info.local)).toEqual([[], [0]]);
    expect(planAssignment(members, 2, 0).owner).toEqual(['m-b', 'm-a']);
    // The same members with the folders unmeasured: "a" keeps its folder's partition.
    const unmeasured = members.map((m) => ({ ...m, info: { ...m.info, local: [0] } }));
    expect(planAssignment(unmeasured, 2, 0).owner).toEqual(['m-a', 'm-b']);
  });

  test('should skip folders in use here and keep the last measure when the changelog ends do not come back in time', async () => {
    await folder('a', 0, 100n);
    await folder('a', 1, 100n);
    const measured = cleaner('a');
    await measured.measureLocal(new Set([1]));
    expect(measured.warmLocal([0, 1])).toEqual([1]);
    const stalled = new StateDirectoryCleaner({
      appDir,
      instanceId: 'a',
      cleanupDelayMs: 600_000,
      recovery: {
        acceptableLagRecords: ACCEPTABLE,
        measureTimeoutMs: 50,
        changelogEndOffsets: () => new Promise(() => undefined),
      },
    });
    // Returns (the test would time out otherwise) with nothing measured: every folder keeps the benefit of the doubt.
    await stalled.measureLocal(new Set());
    expect(stalled.warmLocal([0, 1])).toEqual([0, 1]);
  });

  test('should refuse a recovery lag measure timeout that is not a non-negative integer of ms, naming it', () => {
    for (const measureTimeoutMs of [-1, 1.5, Number.NaN])
      expect(
        () =>
          new StateDirectoryCleaner({
            appDir,
            instanceId: 'a',
            cleanupDelayMs: 600_000,
            recovery: {
              acceptableLagRecords: ACCEPTABLE,
              measureTimeoutMs,
              changelogEndOffsets: async () => new Map(),
            },
          }),
      ).toThrow(/recovery lag measure timeout/);
  });
});
