// The two write layers that let the engine process the next batch while a transaction commits:
// prepareCommit → (writes, prefetches and reads of the next transaction) → flush | abort.
import { afterEach, describe, expect, it } from 'vitest';
import { KeyNotLoadedError, type TaskStore } from '../../../src/stores/types.ts';
import { collect, levelHarness, memoryHarness, type StoreHarness } from './harness.ts';

interface Account {
  balance: string;
}

const bytesOf = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8');

for (const harness of [memoryHarness(), levelHarness()]) describeLayers(harness);

function describeLayers(harness: StoreHarness): void {
  describe(`${harness.label} layered commit`, () => {
    const open: TaskStore<unknown>[] = [];

    async function openStore(location?: Awaited<ReturnType<StoreHarness['location']>>) {
      const where = location ?? (await harness.location());
      const store = await harness.open<Account>(where, {});
      open.push(store as TaskStore<unknown>);
      return { store, location: where };
    }

    /** A value as a read sees it, or 'not loaded' when the store refuses a read without prefetch. */
    function peek(store: TaskStore<Account>, key: string): Account | undefined | 'not loaded' {
      try {
        return store.get(key);
      } catch (error) {
        if (error instanceof KeyNotLoadedError) return 'not loaded';
        throw error;
      }
    }

    afterEach(async () => {
      for (const store of open.splice(0)) await store.close();
      await harness.cleanup();
    });

    it('should read current, then committing, then committed values when a commit is in progress', async () => {
      const { store } = await openStore();
      store.put('a', { balance: '1' });
      store.put('b', { balance: '1' });
      store.put('c', { balance: '1' });
      await store.flush(3n);
      store.put('a', { balance: '2' });
      store.delete('b');
      expect(store.prepareCommit()).toEqual([
        { key: 'a', value: bytesOf({ balance: '2' }) },
        { key: 'b', value: null },
      ]);
      expect(store.commitInProgress()).toBe(true);
      expect(store.commitNeeded()).toBe(false);
      store.put('a', { balance: '3' });
      await store.prefetch(['a', 'b', 'c']);
      expect(store.get('a')).toEqual({ balance: '3' });
      expect(store.get('b')).toBeUndefined();
      expect(store.get('c')).toEqual({ balance: '1' });
      expect(await collect(store.range())).toEqual([
        ['a', { balance: '3' }],
        ['c', { balance: '1' }],
      ]);
      expect(store.pendingChangelog()).toEqual([{ key: 'a', value: bytesOf({ balance: '3' }) }]);
    });

    it('should refuse a second prepareCommit when a commit is in progress', async () => {
      const { store } = await openStore();
      store.put('a', { balance: '1' });
      store.prepareCommit();
      store.put('b', { balance: '1' });
      expect(() => store.prepareCommit()).toThrow(/another commit is in progress/);
    });

    it('should flush only the committing layer with its checkpoint when writes followed the prepare', async () => {
      const { store, location } = await openStore();
      store.put('a', { balance: '1' });
      store.prepareCommit();
      store.put('b', { balance: '2' });
      store.put('a', { balance: '5' });
      await store.flush(1n);
      expect(store.commitInProgress()).toBe(false);
      expect(await store.checkpoint()).toBe(1n);
      expect(store.position()).toBe(1n);
      expect(store.commitNeeded()).toBe(true);
      expect(store.pendingChangelog()).toEqual([
        { key: 'b', value: bytesOf({ balance: '2' }) },
        { key: 'a', value: bytesOf({ balance: '5' }) },
      ]);
      expect(await store.readCommitted('a')).toEqual({ balance: '1' });
      await store.close();
      const { store: reopened } = await openStore(location);
      await reopened.prefetch(['a', 'b']);
      expect(reopened.get('a')).toEqual({ balance: '1' });
      expect(reopened.get('b')).toBeUndefined();
      expect(await reopened.checkpoint()).toBe(1n);
    });

    it('should keep keys prefetched during a commit readable when that commit is flushed', async () => {
      const { store } = await openStore();
      store.put('x', { balance: '1' });
      await store.flush(1n);
      store.put('a', { balance: '2' });
      store.prepareCommit();
      // Prefetched while the commit is in progress: one key from the committing layer, one committed, one absent.
      await store.prefetch(['a', 'x', 'nobody']);
      await store.flush(2n);
      expect(store.get('a')).toEqual({ balance: '2' });
      expect(store.get('x')).toEqual({ balance: '1' });
      expect(store.get('nobody')).toBeUndefined();
    });

    it('should let a prefetch and writes run when a flush is in flight', async () => {
      const { store } = await openStore();
      store.put('x', { balance: '1' });
      await store.flush(1n);
      store.put('a', { balance: '2' });
      store.prepareCommit();
      const flushing = store.flush(2n);
      const prefetching = store.prefetch(['a', 'x', 'y']);
      store.put('y', { balance: '3' });
      await Promise.all([flushing, prefetching]);
      expect(store.get('a')).toEqual({ balance: '2' });
      expect(store.get('x')).toEqual({ balance: '1' });
      expect(store.get('y')).toEqual({ balance: '3' });
      expect(store.pendingChangelog()).toEqual([{ key: 'y', value: bytesOf({ balance: '3' }) }]);
    });

    it('should drop both layers when a commit in progress is aborted', async () => {
      const { store, location } = await openStore();
      store.put('x', { balance: '1' });
      await store.flush(1n);
      store.put('a', { balance: '2' });
      store.put('x', { balance: '9' });
      store.prepareCommit();
      await store.prefetch(['a', 'x']);
      store.put('b', { balance: '3' });
      store.abort();
      expect(store.commitInProgress()).toBe(false);
      expect(store.commitNeeded()).toBe(false);
      // Values pinned from the aborted committing layer must not survive as if they were committed.
      expect(peek(store, 'a')).not.toEqual({ balance: '2' });
      expect(peek(store, 'x')).not.toEqual({ balance: '9' });
      await store.prefetch(['a', 'b', 'x']);
      expect(store.get('a')).toBeUndefined();
      expect(store.get('b')).toBeUndefined();
      expect(store.get('x')).toEqual({ balance: '1' });
      expect(await collect(store.range())).toEqual([['x', { balance: '1' }]]);
      await store.close();
      const { store: reopened } = await openStore(location);
      expect(await reopened.checkpoint()).toBe(1n);
      await reopened.prefetch(['a', 'x']);
      expect(reopened.get('a')).toBeUndefined();
      expect(reopened.get('x')).toEqual({ balance: '1' });
    });

    it('should refuse an abort when a flush is in flight', async () => {
      const { store } = await openStore();
      store.put('a', { balance: '1' });
      store.prepareCommit();
      const flushing = store.flush(1n);
      expect(() => store.abort()).toThrow(/abort while flush is in progress/);
      await flushing;
    });
  });
}
