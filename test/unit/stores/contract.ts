// The behaviour every TaskStore implementation owes the engine, run once per implementation.
import { afterEach, describe, expect, it } from 'vitest';
import {
  InvalidChangelogOffsetError,
  KeyNotLoadedError,
  StoreFailedError,
  type StoreOptions,
  type TaskStore,
} from '../../../src/stores/types.ts';
import { collect, type Location, type StoreHarness } from './harness.ts';

interface Account {
  balance: string;
}

const bytesOf = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8');

export function describeStoreContract(harness: StoreHarness): void {
  describe(`${harness.label} contract`, () => {
    const open: TaskStore<unknown>[] = [];

    async function openStore<V = Account>(
      options: Partial<StoreOptions<V>> = {},
      location?: Location,
    ): Promise<{ store: TaskStore<V>; location: Location }> {
      const where = location ?? (await harness.location());
      const store = await harness.open<V>(where, options);
      open.push(store as TaskStore<unknown>);
      return { store, location: where };
    }

    async function reopen<V>(
      store: TaskStore<V>,
      location: Location,
      options: Partial<StoreOptions<V>> = {},
    ): Promise<TaskStore<V>> {
      await store.close();
      return (await openStore<V>(options, location)).store;
    }

    /** Commits `values` as one transaction at `offset`. */
    async function commit(
      store: TaskStore<Account>,
      values: Record<string, Account | null>,
      offset: bigint | null,
    ): Promise<void> {
      for (const [key, value] of Object.entries(values)) {
        if (value === null) store.delete(key);
        else store.put(key, value);
      }
      await store.flush(offset);
    }

    afterEach(async () => {
      for (const store of open.splice(0)) await store.close();
      await harness.cleanup();
    });

    it('should read its own uncommitted writes when keys were put or deleted', async () => {
      const { store } = await openStore();
      store.put('a', { balance: '1.00' });
      store.put('a', { balance: '2.00' });
      store.put('b', { balance: '3.00' });
      store.delete('b');
      expect(store.get('a')).toEqual({ balance: '2.00' });
      expect(store.get('b')).toBeUndefined();
    });

    it('should throw KeyNotLoadedError when a key was neither written nor prefetched', async () => {
      const { store } = await openStore();
      expect(() => store.get('missing')).toThrow(KeyNotLoadedError);
    });

    it('should read undefined when a prefetched key is absent', async () => {
      const { store } = await openStore();
      await store.prefetch(['nobody', 'nobody']);
      expect(store.get('nobody')).toBeUndefined();
    });

    it('should read committed values when they were prefetched while writes were pending', async () => {
      const { store } = await openStore();
      await commit(store, { a: { balance: '1.00' }, b: { balance: '2.00' } }, 2n);
      store.put('a', { balance: '9.00' });
      await store.prefetch(['a', 'b']);
      expect(store.get('a')).toEqual({ balance: '9.00' });
      expect(store.get('b')).toEqual({ balance: '2.00' });
    });

    it('should return the last write per key in first-write order when the changelog is taken', async () => {
      const { store } = await openStore();
      store.put('a', { balance: '1.00' });
      store.put('b', { balance: '2.00' });
      store.put('a', { balance: '3.00' });
      store.delete('b');
      store.put('c', { balance: '4.00' });
      expect(store.pendingChangelog()).toEqual([
        { key: 'a', value: bytesOf({ balance: '3.00' }) },
        { key: 'b', value: null },
        { key: 'c', value: bytesOf({ balance: '4.00' }) },
      ]);
      expect(store.commitNeeded()).toBe(true);
    });

    it('should need no commit when the writes were flushed or aborted', async () => {
      const { store } = await openStore();
      expect(store.commitNeeded()).toBe(false);
      store.put('a', { balance: '1.00' });
      await store.flush(1n);
      expect(store.commitNeeded()).toBe(false);
      store.delete('a');
      store.abort();
      expect(store.commitNeeded()).toBe(false);
      expect(store.pendingChangelog()).toEqual([]);
    });

    it('should keep flushed values and the checkpoint when the store is closed and reopened', async () => {
      const { store, location } = await openStore();
      expect(await store.checkpoint()).toBeNull();
      await commit(store, { a: { balance: '1.00' }, b: { balance: '2.00' } }, 2n);
      await commit(store, { b: null, c: { balance: '3.00' } }, 4n);
      const reopened = await reopen(store, location);
      expect(await reopened.checkpoint()).toBe(4n);
      await reopened.prefetch(['a', 'b', 'c']);
      expect([reopened.get('a'), reopened.get('b'), reopened.get('c')]).toEqual([
        { balance: '1.00' },
        undefined,
        { balance: '3.00' },
      ]);
    });

    it('should drop uncommitted writes when the store is closed without a flush', async () => {
      const { store, location } = await openStore();
      await commit(store, { a: { balance: '1.00' } }, 1n);
      store.put('a', { balance: '2.00' });
      const reopened = await reopen(store, location);
      await reopened.prefetch(['a']);
      expect(reopened.get('a')).toEqual({ balance: '1.00' });
    });

    it('should keep the previous checkpoint when an unlogged store is flushed', async () => {
      const { store, location } = await openStore<Account>({ logged: false });
      await commit(store, { a: { balance: '1.00' } }, null);
      expect(await store.checkpoint()).toBeNull();
      const reopened = await reopen(store, location, { logged: false });
      await reopened.prefetch(['a']);
      expect(reopened.get('a')).toEqual({ balance: '1.00' });
    });

    it('should throw InvalidChangelogOffsetError and persist nothing when the offset goes backwards', async () => {
      const { store, location } = await openStore();
      await commit(store, { a: { balance: '1.00' } }, 10n);
      store.put('a', { balance: '2.00' });
      await expect(store.flush(9n)).rejects.toThrow(InvalidChangelogOffsetError);
      expect(() => store.get('a')).toThrow(StoreFailedError);
      const reopened = await reopen(store, location);
      expect(await reopened.checkpoint()).toBe(10n);
      await reopened.prefetch(['a']);
      expect(reopened.get('a')).toEqual({ balance: '1.00' });
    });

    it('should accept the same offset again when a flush reaches no further', async () => {
      const { store } = await openStore();
      await commit(store, { a: { balance: '1.00' } }, 5n);
      await store.flush(5n);
      expect(await store.checkpoint()).toBe(5n);
    });

    it('should fail closed when a logged store is flushed without an offset', async () => {
      const { store } = await openStore();
      store.put('a', { balance: '1.00' });
      await expect(store.flush(null)).rejects.toThrow(/without a changelog offset/);
      expect(() => store.commitNeeded()).toThrow(StoreFailedError);
    });

    it('should drop uncommitted writes and keep committed values when aborted', async () => {
      const { store } = await openStore();
      await commit(store, { a: { balance: '1.00' } }, 1n);
      await store.prefetch(['a', 'b']);
      store.put('a', { balance: '5.00' });
      store.put('b', { balance: '6.00' });
      store.abort();
      expect(store.pendingChangelog()).toEqual([]);
      await store.prefetch(['a', 'b']);
      expect(store.get('a')).toEqual({ balance: '1.00' });
      expect(store.get('b')).toBeUndefined();
      expect(await collect(store.range())).toEqual([['a', { balance: '1.00' }]]);
    });

    it('should refuse every call but close when a flush failed in storage', async () => {
      const { store, location } = await openStore();
      await commit(store, { a: { balance: '1.00' } }, 1n);
      store.put('a', { balance: '2.00' });
      await harness.breakWrites(store as TaskStore<unknown>);
      const failure = await store.flush(2n).then(
        () => null,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(Error);
      const refusals: (() => unknown)[] = [
        () => store.get('a'),
        () => store.put('a', { balance: '3.00' }),
        () => store.delete('a'),
        () => store.range(),
        () => store.pendingChangelog(),
        () => store.commitNeeded(),
        () => store.abort(),
      ];
      for (const call of refusals) expect(call).toThrow(StoreFailedError);
      await expect(store.prefetch(['a'])).rejects.toThrow(StoreFailedError);
      await expect(store.flush(3n)).rejects.toThrow(StoreFailedError);
      await expect(store.checkpoint()).rejects.toThrow(StoreFailedError);
      await expect(store.restoreBatch([], 3n)).rejects.toThrow(StoreFailedError);
      await expect(store.flush(3n)).rejects.toMatchObject({ code: 'store_failed', cause: failure });
      const reopened = await reopen(store, location);
      expect(await reopened.checkpoint()).toBe(1n);
      await reopened.prefetch(['a']);
      expect(reopened.get('a')).toEqual({ balance: '1.00' });
    });

    it('should merge uncommitted writes over committed rows in key order when ranging', async () => {
      const { store } = await openStore();
      await commit(store, { a: { balance: '1' }, b: { balance: '2' }, c: { balance: '3' }, e: { balance: '5' } }, 4n);
      store.put('b', { balance: '20' });
      store.delete('c');
      store.put('d', { balance: '4' });
      store.put('f', { balance: '6' });
      store.delete('zz');
      const keysOf = async (options?: Parameters<TaskStore<Account>['range']>[0]) =>
        (await collect(store.range(options))).map(([key]) => key);
      expect(await collect(store.range())).toEqual([
        ['a', { balance: '1' }],
        ['b', { balance: '20' }],
        ['d', { balance: '4' }],
        ['e', { balance: '5' }],
        ['f', { balance: '6' }],
      ]);
      expect(await keysOf({ gte: 'b', lt: 'f' })).toEqual(['b', 'd', 'e']);
      expect(await keysOf({ gte: 'b', limit: 2 })).toEqual(['b', 'd']);
      expect(await keysOf({ limit: 0 })).toEqual([]);
      expect(await keysOf({ gte: 'e', lt: 'b' })).toEqual([]);
    });

    it('should order keys by UTF-8 bytes and never return metadata when ranging over everything', async () => {
      const { store } = await openStore();
      // Keys chosen to sit next to any prefix scheme ("d:", "m:") and across the UTF-16/UTF-8 order split.
      const committed = ['', 'd:x', 'm:changelog-offset', '\uffff', '\u{1f601}', 'Z'];
      const uncommitted = ['a', '\ue000', '\u{1f600}', 'd;', 'm;'];
      await commit(store, Object.fromEntries(committed.map((key) => [key, { balance: key }])), 6n);
      for (const key of uncommitted) store.put(key, { balance: key });
      const expected = [...committed, ...uncommitted].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
      expect((await collect(store.range())).map(([key]) => key)).toEqual(expected);
    });

    it('should stop reading when a range is abandoned early', async () => {
      const { store } = await openStore();
      await commit(
        store,
        Object.fromEntries(
          Array.from({ length: 600 }, (_, i) => [`k${String(i).padStart(3, '0')}`, { balance: String(i) }]),
        ),
        600n,
      );
      for await (const [key] of store.range({ gte: 'k100' })) {
        expect(key).toBe('k100');
        break;
      }
      await store.flush(600n);
    });

    it('should apply entries and move the checkpoint when a restore batch is applied', async () => {
      const { store, location } = await openStore();
      await commit(store, { a: { balance: '1' }, b: { balance: '2' } }, 2n);
      await store.prefetch(['a', 'b']);
      store.abort();
      await store.restoreBatch(
        [
          { key: 'a', value: bytesOf({ balance: '10' }) },
          { key: 'b', value: null },
          { key: 'c', value: bytesOf({ balance: '3' }) },
          { key: 'c', value: bytesOf({ balance: '30' }) },
        ],
        7n,
      );
      expect(await store.checkpoint()).toBe(7n);
      await store.prefetch(['a', 'b', 'c']);
      expect([store.get('a'), store.get('b'), store.get('c')]).toEqual([
        { balance: '10' },
        undefined,
        { balance: '30' },
      ]);
      const reopened = await reopen(store, location);
      expect(await reopened.checkpoint()).toBe(7n);
      expect(await collect(reopened.range())).toEqual([
        ['a', { balance: '10' }],
        ['c', { balance: '30' }],
      ]);
    });

    it('should throw InvalidChangelogOffsetError when a restore batch goes backwards', async () => {
      const { store } = await openStore();
      await store.restoreBatch([{ key: 'a', value: bytesOf({ balance: '1' }) }], 5n);
      await expect(store.restoreBatch([], 4n)).rejects.toThrow(InvalidChangelogOffsetError);
      expect(() => store.get('a')).toThrow(StoreFailedError);
    });

    it('should refuse a restore batch when it holds bytes the serde cannot read', async () => {
      const { store } = await openStore();
      await expect(store.restoreBatch([{ key: 'a', value: Buffer.from('{not json') }], 1n)).rejects.toMatchObject({
        code: 'store_corrupted',
      });
    });

    it('should keep every prefetched key readable when a batch loads more keys than the cache holds', async () => {
      const { store } = await openStore<Account>({ cacheEntriesMax: 2 });
      const keys = Array.from({ length: 8 }, (_, i) => `k${i}`);
      await commit(store, Object.fromEntries(keys.map((key) => [key, { balance: key }])), 8n);
      await store.prefetch(keys.slice(0, 4));
      await store.prefetch([...keys.slice(4), 'absent']);
      store.put('k0', { balance: 'new' });
      for (const key of keys.slice(1)) expect(store.get(key)).toEqual({ balance: key });
      expect(store.get('absent')).toBeUndefined();
      await store.flush(9n);
      const readable = [...keys, 'absent'].filter((key) => {
        try {
          store.get(key);
          return true;
        } catch (error) {
          if (error instanceof KeyNotLoadedError) return false;
          throw error;
        }
      });
      expect(readable.length).toBeLessThanOrEqual(harness.cachesCommitted ? 2 : 0);
    });

    it(`should ${harness.freezesValues ? '' : 'not '}freeze values when they are put or read, and store them as they were when put`, async () => {
      const { store, location } = await openStore<{ balance: string; owners: string[] }>();
      const value = { balance: '1.00', owners: ['u1'] };
      store.put('a', value);
      const mutate = () => {
        value.balance = '2.00';
      };
      if (harness.freezesValues) expect(mutate).toThrow(TypeError);
      else expect(mutate).not.toThrow();
      await store.flush(1n);
      await store.prefetch(['a']);
      const read = store.get('a');
      if (harness.freezesValues) expect(() => read?.owners.push('u2')).toThrow(TypeError);
      else expect(Object.isFrozen(read)).toBe(false);
      const reopened = await reopen(store, location);
      await reopened.prefetch(['a']);
      expect(reopened.get('a')).toEqual({ balance: '1.00', owners: ['u1'] });
    });

    it('should refuse a put of undefined when a value is missing', async () => {
      const { store } = await openStore<Account | undefined>();
      expect(() => store.put('a', undefined)).toThrow(/use delete/);
    });

    it('should refuse calls after close when the store was closed', async () => {
      const { store } = await openStore();
      await store.close();
      await store.close();
      expect(() => store.get('a')).toThrow(/closed and refuses get/);
    });

    it('should keep a write for the next commit when it was made while a flush was in flight', async () => {
      const { store, location } = await openStore();
      store.put('a', { balance: '1' });
      const flushing = store.flush(1n);
      store.put('b', { balance: '2' });
      await flushing;
      expect(store.commitNeeded()).toBe(true);
      expect(store.pendingChangelog()).toEqual([{ key: 'b', value: bytesOf({ balance: '2' }) }]);
      const reopened = await reopen(store, location);
      await reopened.prefetch(['a', 'b']);
      expect(reopened.get('a')).toEqual({ balance: '1' });
      expect(reopened.get('b')).toBeUndefined();
    });
  });
}
