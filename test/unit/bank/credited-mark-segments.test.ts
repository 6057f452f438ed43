// The to task's credited mark (i16b) and the from task's dedup entry (i14b) share the transfers store,
// which is segmented (i19): both must go through the segments — found by the lookups the processor
// prefetches, restored unless their segment expired, and purged with their segment — and no mark may
// sit at a physical key the segmented layout reads as a segment entry.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { creditedKey, dedupKey, type TransferEntry, transfersView } from '../../../src/bank/stores.ts';
import { MemoryTaskStore } from '../../../src/stores/memory-store.ts';
import { jsonSerde } from '../../../src/stores/serdes.ts';
import { logicalRecord, SegmentedKeyValueStore } from '../../../src/stores/segmented-store.ts';

const RETENTION_MS = 7 * 86_400_000;
const SEGMENT_MS = RETENTION_MS / 2;
const START_MS = Date.UTC(2026, 0, 1);
const BOUNDS = { budgetMs: 10_000, purgeEntriesPerCallMax: 1_000, scannedEntriesMax: 1_000 };

function setup() {
  const inner = new MemoryTaskStore<unknown>(
    { name: 'transfers', valueSerde: jsonSerde(), logged: true, cacheEntriesMax: 0 },
    { strictPrefetch: false },
  );
  const clock = { now: START_MS };
  const view = transfersView(inner, { retentionMs: RETENTION_MS, segmentIntervalMs: SEGMENT_MS }, () => clock.now);
  return { inner, view, clock };
}

const final = (decidedAt: number): TransferEntry => ({ fingerprint: 'f', status: 'completed', decidedAt });
const account = fc.string({ minLength: 1, maxLength: 30 });
const transferId = fc.string({ minLength: 1, maxLength: 30 });

describe('credited marks in the segmented transfers store', () => {
  test('should round-trip a credited mark and a dedup entry of the same pair through segments and expire both', async () => {
    await fc.assert(
      fc.asyncProperty(account, transferId, async (acc, id) => {
        const { inner, view, clock } = setup();
        view.put(dedupKey(acc, id), final(clock.now));
        view.put(creditedKey(acc, id), { ...final(clock.now), fingerprint: 'credit leg' });
        await inner.flush(1n);
        const physical = inner.disk.keys();
        expect(physical).toHaveLength(2);
        for (const key of physical) {
          // Both are segment entries, named by the processor's prefetch and mapped back to their logical key.
          expect(key.startsWith('\u0001')).toBe(true);
          expect(view.keysFor(logicalRecord(key, null).key)).toContain(key);
          expect(SegmentedKeyValueStore.expiredKey(key, clock.now, RETENTION_MS, SEGMENT_MS)).toBe(false);
        }
        expect(new Set(physical.map((k) => logicalRecord(k, null).key))).toEqual(
          new Set([dedupKey(acc, id), creditedKey(acc, id)]),
        );
        clock.now += RETENTION_MS - 1;
        view.expireStep(BOUNDS);
        await view.expiryIdle();
        expect(view.get(dedupKey(acc, id))).toMatchObject({ fingerprint: 'f' });
        expect(view.get(creditedKey(acc, id))).toMatchObject({ fingerprint: 'credit leg' });
        clock.now = START_MS + RETENTION_MS + SEGMENT_MS;
        view.expireStep(BOUNDS);
        await view.expiryIdle();
        expect(view.expireStep(BOUNDS)).toMatchObject({ purged: 2, caughtUp: true });
        expect(view.get(dedupKey(acc, id))).toBeUndefined();
        expect(view.get(creditedKey(acc, id))).toBeUndefined();
        expect(inner.disk.keys()).toHaveLength(0);
        // And a restore at that time skips both changelog records.
        for (const key of physical)
          expect(SegmentedKeyValueStore.expiredKey(key, clock.now, RETENTION_MS, SEGMENT_MS)).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  test('should never equal a dedup key nor look like a segment key when accounts and ids are arbitrary', () => {
    fc.assert(
      fc.property(account, transferId, account, transferId, (a, t, b, u) => {
        const mark = creditedKey(a, t);
        expect(mark).not.toBe(dedupKey(b, u));
        // A flat key beginning with SOH and digits (an old SOH-prefixed mark) is no segment id for restore.
        const flat = `\u0001${mark.slice(2)}`;
        expect(SegmentedKeyValueStore.expiredKey(flat, Number.MAX_SAFE_INTEGER, RETENTION_MS, SEGMENT_MS)).toBe(false);
      }),
    );
  });
});

describe('the segmented transfers store and savepoints (KIP-1033 rollback)', () => {
  const inFlight = (decidedAt: number): TransferEntry => ({ fingerprint: 'f', status: 'in_flight', decidedAt });

  test('should keep the pinned in-flight entry and no segment copy when a record that settled it is rolled back', async () => {
    const { inner, view, clock } = setup();
    const key = dedupKey('acc', 't-1');
    view.put(key, inFlight(clock.now));
    await inner.flush(1n);
    inner.savepoint();
    view.put(key, final(clock.now)); // moves it from "\u0002" (pinned) into its segment
    view.put(creditedKey('acc', 't-1'), final(clock.now));
    inner.rollbackToSavepoint();
    expect(view.get(key)).toMatchObject({ status: 'in_flight' });
    expect(view.get(creditedKey('acc', 't-1'))).toBeUndefined();
    await inner.flush(2n);
    expect(inner.disk.keys()).toEqual([`\u0002${key}`]);
  });

  test('should not bring purged entries back when a punctuation is rolled back after its purge', async () => {
    const { inner, view, clock } = setup();
    view.put(creditedKey('acc', 't-old'), final(clock.now));
    await inner.flush(1n);
    clock.now += RETENTION_MS + SEGMENT_MS;
    inner.savepoint();
    view.expireStep(BOUNDS);
    await view.expiryIdle();
    expect(view.expireStep(BOUNDS)).toMatchObject({ purged: 1 });
    view.put(creditedKey('acc', 't-new'), final(clock.now));
    inner.rollbackToSavepoint();
    // The purge is local and below the live window: nothing to undo, and nothing a lookup could find.
    expect(view.get(creditedKey('acc', 't-old'))).toBeUndefined();
    expect(view.get(creditedKey('acc', 't-new'))).toBeUndefined();
    await inner.flush(2n);
    expect(inner.disk.keys()).toEqual([]);
  });
});
