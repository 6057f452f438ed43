import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { MemoryTaskStore } from '../../../src/stores/memory-store.ts';
import { jsonSerde } from '../../../src/stores/serdes.ts';
import {
  type ExpiryStepResult,
  logicalEntries,
  logicalRecord,
  type PurgeableStore,
  SegmentedKeyValueStore,
} from '../../../src/stores/segmented-store.ts';

interface Row {
  at: number | null;
}

const RETENTION_MS = 1_000;
const SEGMENT_MS = 500;
const BOUNDS = { budgetMs: 1_000, purgeEntriesPerCallMax: 3, scannedEntriesMax: 100 };

function setup(oldLayout = false): {
  inner: MemoryTaskStore<unknown>;
  store: SegmentedKeyValueStore<Row>;
  clock: { now: number };
} {
  const inner = new MemoryTaskStore<unknown>(
    { name: 's', valueSerde: jsonSerde(), logged: true, cacheEntriesMax: 0 },
    { strictPrefetch: false },
  );
  const clock = { now: 10_000 };
  offset = 0n;
  const store = new SegmentedKeyValueStore<Row>(inner, {
    retentionMs: RETENTION_MS,
    segmentIntervalMs: SEGMENT_MS,
    timeOf: (row) => row.at,
    clock: () => clock.now,
    oldLayout,
  });
  return { inner, store, clock };
}

/**
 * Steps until no expiry call is left in the background (a step never waits for one: the test does,
 * between steps), summing what the steps did; the last step's other fields.
 */
async function settle(store: SegmentedKeyValueStore<Row>, bounds = BOUNDS): Promise<ExpiryStepResult> {
  let total: ExpiryStepResult | undefined;
  for (let i = 0; i < 100; i++) {
    const step = store.expireStep(bounds);
    total =
      total === undefined
        ? step
        : {
            ...step,
            purged: total.purged + step.purged,
            migrated: total.migrated + step.migrated,
            refreshed: total.refreshed + step.refreshed,
          };
    if (!step.inFlight) return total;
    await store.expiryIdle();
  }
  throw new Error('expiry did not settle in 100 steps');
}

let offset = 0n;
async function commit(inner: MemoryTaskStore<unknown>): Promise<void> {
  offset += 1n;
  await inner.flush(offset);
}

describe('SegmentedKeyValueStore', () => {
  test('should find an entry for the whole retention and forget it one segment later when expiry steps run', async () => {
    const { inner, store, clock } = setup();
    store.put('a', { at: clock.now });
    await commit(inner);
    clock.now += RETENTION_MS - 1;
    await settle(store);
    expect(store.get('a')).toEqual({ at: 10_000 });
    clock.now = 10_000 + RETENTION_MS + SEGMENT_MS;
    const step = await settle(store);
    expect(step).toMatchObject({ purged: 1, caughtUp: true });
    expect(store.get('a')).toBeUndefined();
    expect(inner.disk.keys()).toEqual([]);
  });

  test('should purge expired segments in bounded calls and leave no changelog record when it drops them', async () => {
    const { inner, store, clock } = setup();
    for (let i = 0; i < 10; i++) store.put(`k${i}`, { at: clock.now });
    await commit(inner);
    clock.now += 10 * RETENTION_MS;
    // A step only starts the purge (synchronously, never waiting for it); later steps report what it deleted.
    const first = store.expireStep(BOUNDS);
    expect(first).toMatchObject({ purged: 0, inFlight: true, caughtUp: false });
    const step = await settle(store);
    expect(step).toMatchObject({ purged: 10, caughtUp: true });
    // In calls of purgeEntriesPerCallMax (3) entries: 3 + 3 + 3 + 1.
    expect(first.backgroundCalls + step.backgroundCalls).toBeGreaterThanOrEqual(4);
    expect(inner.pendingChangelog()).toEqual([]);
  });

  test('should never expire a pinned entry and rewrite it before its changelog record gets old', async () => {
    const { inner, store, clock } = setup();
    store.put('p', { at: null });
    await commit(inner);
    clock.now += RETENTION_MS * 20;
    const step = await settle(store);
    expect(step.refreshed).toBe(1);
    expect(inner.pendingChangelog().map((e) => e.key)).toEqual(['\u0002p']);
    expect(store.get('p')).toEqual({ at: null });
  });

  test('should apply the writes of a scan only while its budget lasts and the rest at the next steps', async () => {
    const { inner, store, clock } = setup();
    for (let i = 0; i < 150; i++) store.put(`p${String(i).padStart(3, '0')}`, { at: null });
    await commit(inner);
    clock.now += RETENTION_MS * 20;
    const bounds = { ...BOUNDS, budgetMs: 2, scannedEntriesMax: 1_000 };
    expect(store.expireStep(bounds)).toMatchObject({ refreshed: 0, inFlight: true });
    await store.expiryIdle();
    // A clock that moves 1 ms per look: the budget (2 ms) lets one look pass, so 64 entries per step.
    const ticking = (): (() => number) => {
      let ms = 0;
      return () => ms++;
    };
    expect(store.expireStep(bounds, ticking())).toMatchObject({ refreshed: 64, inFlight: true });
    expect(store.expireStep(bounds, ticking())).toMatchObject({ refreshed: 64, inFlight: true });
    // The last 22, then the pass is over (no scan due until the next one).
    expect(store.expireStep(bounds, ticking())).toMatchObject({ refreshed: 22, inFlight: false });
    expect(new Set(inner.pendingChangelog().map((e) => e.key)).size).toBe(150);
  });

  test('should move an entry to its new segment and delete the old copy when it is rewritten', async () => {
    const { inner, store, clock } = setup();
    store.put('a', { at: null });
    await commit(inner);
    clock.now += 100;
    store.put('a', { at: clock.now });
    await commit(inner);
    expect(logicalEntries(inner.disk.keys().map((k) => [k, JSON.parse(inner.disk.read(k)!.toString())]))).toEqual(
      new Map([['a', { at: 10_100 }]]),
    );
    expect(inner.disk.keys()).toHaveLength(1);
  });

  test('should find old-layout entries, then move or drop them when the sweep runs', async () => {
    const { inner, store, clock } = setup(true);
    inner.put('\u0000old-live', { at: clock.now - 10 });
    inner.put('zz-old-pinned', { at: null });
    inner.put('old-expired', { at: clock.now - 10 * RETENTION_MS });
    await commit(inner);
    expect(store.keysFor('x')).toContain('x');
    expect(store.get('\u0000old-live')).toEqual({ at: 9_990 });
    // Two steps per pass (below and above the new prefixes); one more pass that finds nothing proves the old layout is gone.
    for (let step = 0; step < 4; step++) {
      await settle(store);
      await commit(inner);
    }
    expect(store.oldLayoutLeft).toBe(false);
    expect(store.keysFor('x')).not.toContain('x');
    expect(store.get('\u0000old-live')).toEqual({ at: 9_990 });
    expect(store.get('zz-old-pinned')).toEqual({ at: null });
    expect(store.get('old-expired')).toBeUndefined();
    expect(inner.disk.keys().every((k) => k.startsWith('\u0001') || k.startsWith('\u0002'))).toBe(true);
  });

  test('should report a segment key as expired on restore only when its whole segment is past the retention', () => {
    const { inner, store, clock } = setup();
    store.put('a', { at: clock.now });
    const [entry] = inner.pendingChangelog();
    expect(SegmentedKeyValueStore.expiredKey(entry!.key, clock.now + RETENTION_MS, RETENTION_MS, SEGMENT_MS)).toBe(
      false,
    );
    expect(
      SegmentedKeyValueStore.expiredKey(entry!.key, clock.now + RETENTION_MS + SEGMENT_MS, RETENTION_MS, SEGMENT_MS),
    ).toBe(true);
    expect(SegmentedKeyValueStore.expiredKey('\u0002p', Number.MAX_SAFE_INTEGER, RETENTION_MS, SEGMENT_MS)).toBe(false);
  });

  test('should find exactly the pinned entries and those of live segments, and keep no expired one on disk, when random puts, clock moves and steps interleave', async () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('put' as const), key: fc.constantFrom('a', 'b', 'c', 'd'), pinned: fc.boolean() }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 2 * RETENTION_MS }) }),
      fc.record({ kind: fc.constant('step' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
        const { inner, store, clock } = setup();
        const model = new Map<string, Row>();
        for (const o of ops) {
          if (o.kind === 'put') {
            const row = { at: o.pinned ? null : clock.now };
            store.put(o.key, row);
            model.set(o.key, row);
          } else if (o.kind === 'advance') clock.now += o.ms;
          else store.expireStep(BOUNDS);
          await commit(inner);
          const low = Math.floor((clock.now - RETENTION_MS) / SEGMENT_MS);
          for (const [key, row] of model) {
            const live = row.at === null || Math.floor(row.at / SEGMENT_MS) >= low;
            expect(store.get(key)).toEqual(live ? row : undefined);
            // Inside the retention an entry is always found.
            if (row.at !== null && clock.now - row.at < RETENTION_MS) expect(store.get(key)).toEqual(row);
          }
        }
        await settle(store);
        const low = Math.floor((clock.now - RETENTION_MS) / SEGMENT_MS);
        for (const key of inner.disk.keys())
          expect(
            SegmentedKeyValueStore.expiredKey(key, clock.now, RETENTION_MS, SEGMENT_MS),
            `${JSON.stringify(key)} below segment ${low}`,
          ).toBe(false);
      }),
      { numRuns: 150 },
    );
  });

  test('should give changelog readers the logical key and value of every layout when they read physical records', () => {
    const { inner, store, clock } = setup();
    store.put('p', { at: null });
    store.put('s', { at: clock.now });
    const records = inner.pendingChangelog().map((e) => logicalRecord(e.key, JSON.parse(e.value!.toString())));
    expect(records).toEqual([
      { key: 'p', value: { at: null } },
      { key: 's', value: { at: 10_000 } },
    ]);
    expect(logicalRecord('\u0002p', null)).toEqual({ key: 'p', value: null });
    expect(logicalRecord('old', { at: 1 })).toEqual({ key: 'old', value: { at: 1 } });
  });

  describe('when LevelDB is slower than the step budget', () => {
    /** The inner store with its purges and ranges held until released: a LevelDB stalled by compaction. */
    function gated(inner: MemoryTaskStore<unknown>): { store: PurgeableStore<unknown>; release(): void } {
      let release!: () => void;
      let gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const store: PurgeableStore<unknown> = {
        name: inner.name,
        get: (key) => inner.get(key),
        put: (key, value) => inner.put(key, value),
        delete: (key) => inner.delete(key),
        async *range(options) {
          await gate;
          yield* inner.range(options);
        },
        purgeRange: async (gte, lt, limit) => {
          await gate;
          return inner.purgeRange(gte, lt, limit);
        },
      };
      return {
        store,
        release: () => {
          release();
          gate = Promise.resolve();
        },
      };
    }

    function view(store: PurgeableStore<unknown>, clock: { now: number }): SegmentedKeyValueStore<Row> {
      return new SegmentedKeyValueStore<Row>(store, {
        retentionMs: RETENTION_MS,
        segmentIntervalMs: SEGMENT_MS,
        timeOf: (row) => row.at,
        clock: () => clock.now,
        oldLayout: false,
      });
    }

    test('should return without waiting for a purge LevelDB holds and report what it deleted at a later step', async () => {
      const { inner, clock } = setup();
      const slow = gated(inner);
      const store = view(slow.store, clock);
      for (let i = 0; i < 5; i++) store.put(`k${i}`, { at: clock.now });
      await commit(inner);
      clock.now += 10 * RETENTION_MS;
      // Synchronous: a step returns its result, never a promise, whatever LevelDB does.
      const held = store.expireStep(BOUNDS);
      expect(held).not.toBeInstanceOf(Promise);
      expect(held).toMatchObject({ purged: 0, inFlight: true, caughtUp: false });
      // A second step while the call is held starts nothing else.
      expect(store.expireStep(BOUNDS)).toMatchObject({ purged: 0, inFlight: true });
      slow.release();
      expect(await settle(store)).toMatchObject({ purged: 5, inFlight: false, caughtUp: true });
      expect(inner.disk.keys()).toEqual([]);
    });

    test('should throw a failed background purge in the next step, once, and start the purge again after it', async () => {
      const { inner, clock } = setup();
      let failures = 1;
      const flaky: PurgeableStore<unknown> = {
        name: inner.name,
        get: (key) => inner.get(key),
        put: (key, value) => inner.put(key, value),
        delete: (key) => inner.delete(key),
        range: (options) => inner.range(options),
        purgeRange: async (gte, lt, limit) => {
          if (failures-- > 0) throw new Error('LevelDB: IO error');
          return inner.purgeRange(gte, lt, limit);
        },
      };
      const store = view(flaky, clock);
      for (let i = 0; i < 5; i++) store.put(`k${i}`, { at: clock.now });
      await commit(inner);
      clock.now += 10 * RETENTION_MS;
      expect(store.expireStep(BOUNDS)).toMatchObject({ purged: 0, inFlight: true });
      await store.expiryIdle();
      // The step that takes the failure throws it (the punctuation fails, as a record's processing would).
      expect(() => store.expireStep(BOUNDS)).toThrow(/IO error/);
      expect(await settle(store)).toMatchObject({ purged: 5, caughtUp: true });
      expect(inner.disk.keys()).toEqual([]);
    });

    test('should not rewrite a pinned entry the processor changed while the scan that read it was in flight', async () => {
      const { inner, clock } = setup();
      const slow = gated(inner);
      const store = view(slow.store, clock);
      store.put('p', { at: null });
      store.put('q', { at: null });
      await commit(inner);
      clock.now += RETENTION_MS * 20;
      expect(store.expireStep(BOUNDS)).toMatchObject({ refreshed: 0, inFlight: true });
      // The processor settles 'p' meanwhile: it now lives in a segment, and its pinned copy is deleted.
      store.put('p', { at: clock.now });
      await commit(inner);
      slow.release();
      const step = await settle(store);
      // Only 'q' is refreshed: rewriting the stale read of 'p' would bring back a deleted pinned copy.
      expect(step.refreshed).toBe(1);
      expect(inner.pendingChangelog().map((e) => e.key)).toEqual(['\u0002q']);
      expect(store.get('p')).toEqual({ at: clock.now });
    });

    test('should count the entries it holds from its writes and purges, exactly once the segments present at open are purged', async () => {
      const { inner, store, clock } = setup();
      store.put('pinned', { at: null });
      for (let i = 0; i < 4; i++) store.put(`a${i}`, { at: clock.now });
      await commit(inner);
      expect((await settle(store)).storeEntries).toBe(5);
      clock.now += SEGMENT_MS;
      for (let i = 0; i < 3; i++) store.put(`b${i}`, { at: clock.now });
      store.delete('a0');
      await commit(inner);
      clock.now += RETENTION_MS;
      const step = await settle(store);
      // The a-segment (the one open at the start) is purged; the pinned entry was counted by the pass.
      expect(step).toMatchObject({ storeEntries: 4, storeEntriesExact: true });
      expect(inner.disk.keys()).toHaveLength(4);
    });
  });
});
