// Restore's value check: every value is deserialized, except in a batch whose every record's changelog
// MAC verified, where jsonSerde's cheaper format check runs instead (Serde.check). Both refuse a value of
// another encoding or one cut short; what only the full parse finds is refused wherever no MAC vouches.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clusterKeysFromSecret } from '../../../src/config/cluster-key.ts';
import { createLogger } from '../../../src/config/logger.ts';
import type { FetchedRecord } from '../../../src/kafka/fetcher.ts';
import { MAC_HEADER, signChangelogEntry } from '../../../src/kafka/record-mac.ts';
import { changelogVerifier, UnauthenticatedChangelogRecordError } from '../../../src/runtime/record-auth.ts';
import { changelogEntries } from '../../../src/runtime/restore.ts';
import { MemoryTaskStore } from '../../../src/stores/memory-store.ts';
import { jsonSerde } from '../../../src/stores/serdes.ts';
import type { ChangelogEntry } from '../../../src/stores/types.ts';
import { storeOptions } from './harness.ts';

const keys = clusterKeysFromSecret('r'.repeat(40));
const log = createLogger('silent');

function signed(key: string, value: Buffer | null, offset: bigint, store = 'balances'): FetchedRecord {
  const keyBytes = Buffer.from(key);
  const [header] = signChangelogEntry(keys, store, 0, keyBytes, value).values();
  return {
    topic: `app-${store}-changelog`,
    partition: 0,
    offset,
    key: keyBytes,
    value,
    timestamp: 1,
    headers: { [MAC_HEADER]: header! },
  };
}

const CORRUPT: Array<[string, Buffer]> = [
  ['cut short', Buffer.from('{"balance":"1","inFlight":"0"')],
  ['MessagePack (another encoding)', Buffer.from([0x82, 0xa7, 0x62, 0x61, 0x6c, 0x61, 0x6e, 0x63, 0x65, 0xa1, 0x31])],
  ['not UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
  ['with bytes after it', Buffer.from('{"balance":"1"}\u0000')],
  ['empty', Buffer.alloc(0)],
  ['a long scalar that is no JSON', Buffer.from('x'.repeat(40))],
];

describe('restore value check', () => {
  it.each(CORRUPT)('should refuse a value %s, authenticated or not, before anything is written', async (_, bytes) => {
    for (const authenticated of [true, false]) {
      const store = new MemoryTaskStore(storeOptions<unknown>());
      await expect(
        store.restoreBatch(
          [
            { key: 'a', value: Buffer.from('{"balance":"5"}') },
            { key: 'b', value: bytes },
          ],
          2n,
          authenticated,
        ),
      ).rejects.toMatchObject({ code: 'store_corrupted' });
      expect(store.disk.checkpoint).toBeNull();
      await store.close();
    }
  });

  it('should refuse well-bracketed text that is not JSON only when no MAC vouches for it', async () => {
    const bytes = Buffer.from('{not json}');
    const unsigned = new MemoryTaskStore(storeOptions<unknown>());
    await expect(unsigned.restoreBatch([{ key: 'a', value: bytes }], 1n)).rejects.toMatchObject({
      code: 'store_corrupted',
    });
    await unsigned.close();
    // Authenticated: the engine's own writer made it (JSON.stringify never does); reading it fails closed.
    const signedStore = new MemoryTaskStore(storeOptions<unknown>(), { strictPrefetch: false });
    await signedStore.restoreBatch([{ key: 'a', value: bytes }], 1n, true);
    expect(() => signedStore.get('a')).toThrow(/does not deserialize/);
    await signedStore.close();
  });

  it('should accept every value JSON.stringify writes, through both checks', () => {
    const serde = jsonSerde<unknown>();
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const bytes = serde.serialize(value);
        serde.check!(bytes);
        expect(serde.deserialize(bytes)).toEqual(JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 500 },
    );
  });

  it('should restore the old layouts and tombstones as before, with the format check', async () => {
    const store = new MemoryTaskStore(storeOptions<unknown>(), { strictPrefetch: false });
    const entries = [
      { key: 'legacy-transfer-id', value: Buffer.from('{"fingerprint":"f","status":"completed","decidedAt":1}') },
      { key: '\u0002pinned', value: Buffer.from('{"w":1,"v":{"status":"in_flight"}}') },
      { key: 'gone', value: null },
      { key: 'n', value: Buffer.from('42') },
    ];
    await store.restoreBatch(entries, 4n, true);
    expect(store.get('legacy-transfer-id')).toEqual({ fingerprint: 'f', status: 'completed', decidedAt: 1 });
    expect(store.get('\u0002pinned')).toEqual({ w: 1, v: { status: 'in_flight' } });
    expect(store.get('gone')).toBeUndefined();
    expect(store.get('n')).toBe(42);
    await store.close();
  });
});

describe('changelogEntries: which batches are authenticated', () => {
  const value = Buffer.from('{"balance":"1","inFlight":"0"}');

  it('should mark a batch authenticated only when every applied record verified', () => {
    const check = changelogVerifier(keys, {}, log);
    const all = changelogEntries([signed('a', value, 0n), signed('b', null, 1n)], undefined, (r) =>
      check('balances', r),
    );
    expect(all).toEqual({
      entries: [
        { key: 'a', value },
        { key: 'b', value: null },
      ],
      authenticated: true,
    });
    const upgrade = changelogVerifier(keys, { changelogAcceptUnsigned: true }, log);
    const unsignedRecord = { ...signed('c', value, 2n), headers: {} };
    const mixed = changelogEntries([signed('a', value, 0n), unsignedRecord], undefined, (r) => upgrade('balances', r));
    expect(mixed.entries).toHaveLength(2);
    expect(mixed.authenticated).toBe(false);
    expect(changelogEntries([signed('a', value, 0n)]).authenticated).toBe(false);
  });

  it('should leave out a skipped record and still call the rest authenticated', () => {
    const check = changelogVerifier(keys, { changelogSkipRecords: new Set(['app-balances-changelog:0:1']) }, log);
    const batch = changelogEntries([signed('a', value, 0n), signed('b', value, 1n)], undefined, (r) =>
      check('balances', r),
    );
    expect(batch).toEqual({ entries: [{ key: 'a', value }], authenticated: true });
  });

  it('should stop at a forged MAC, even on a value that would pass the format check', () => {
    const check = changelogVerifier(keys, {}, log);
    const forged = { ...signed('a', value, 0n), value: Buffer.from('{"balance":"999999","inFlight":"0"}') };
    expect(() => changelogEntries([forged], undefined, (r) => check('balances', r))).toThrow(
      UnauthenticatedChangelogRecordError,
    );
    const otherStore = signed('a', value, 0n, 'accounts');
    expect(() => changelogEntries([otherStore], undefined, (r) => check('balances', r))).toThrow(/bad_mac/);
  });
});

describe('restoreBatch: one write per key', () => {
  const KEYS = ['a', 'b', 'c', '\u0002pinned', 'skip-me'];
  const entry = fc.record({
    key: fc.constantFrom(...KEYS),
    value: fc.option(
      fc.integer().map((n) => Buffer.from(JSON.stringify({ n }))),
      { nil: null },
    ),
  });

  it('should leave what applying the records one by one leaves, with each key written once', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(entry, { maxLength: 30 }), { minLength: 1, maxLength: 4 }),
        async (batches) => {
          const skipOnRestore = (key: string) => key === 'skip-me';
          const store = new MemoryTaskStore(storeOptions<unknown>({ skipOnRestore }), { strictPrefetch: false });
          const written: ChangelogEntry[][] = [];
          const write = store.disk.write.bind(store.disk);
          store.disk.write = (entries, checkpoint) => {
            written.push(entries);
            write(entries, checkpoint);
          };
          const model = new Map<string, unknown>();
          try {
            for (const [i, batch] of batches.entries()) {
              await store.restoreBatch(batch, BigInt(i + 1), i % 2 === 0);
              for (const { key, value } of batch)
                if (!skipOnRestore(key)) model.set(key, value === null ? undefined : JSON.parse(value.toString()));
            }
            for (const key of KEYS) expect(store.get(key)).toEqual(model.get(key));
            for (const entries of written) {
              const keys = entries.map((e) => e.key);
              expect(new Set(keys).size).toBe(keys.length);
              expect(keys).not.toContain('skip-me');
            }
            expect(store.disk.checkpoint).toBe(BigInt(batches.length));
          } finally {
            await store.close();
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('should check only the values it writes: a replaced value is not refused, the one kept is', async () => {
    const store = new MemoryTaskStore(storeOptions<unknown>(), { strictPrefetch: false });
    const corrupt = Buffer.from('{"balance":"1"');
    await store.restoreBatch(
      [
        { key: 'a', value: corrupt },
        { key: 'a', value: Buffer.from('{"balance":"2"}') },
      ],
      2n,
    );
    expect(store.get('a')).toEqual({ balance: '2' });
    await expect(store.restoreBatch([{ key: 'b', value: corrupt }], 3n)).rejects.toMatchObject({
      code: 'store_corrupted',
    });
    await store.close();
  });
});
