import { describe, expect, it } from 'vitest';
import { MemoryDisk, MemoryTaskStore } from '../../../src/stores/memory-store.ts';
import { KeyNotLoadedError, StoreFailedError } from '../../../src/stores/types.ts';
import { describeStoreContract } from './contract.ts';
import { memoryHarness, storeOptions } from './harness.ts';
import { describeStoreModel } from './model.ts';

describeStoreContract(memoryHarness());
describeStoreModel(memoryHarness(), 300);

describe('MemoryTaskStore', () => {
  it('should throw KeyNotLoadedError when a committed key is read without prefetch in strict mode', async () => {
    const store = new MemoryTaskStore(storeOptions<string>());
    store.put('a', 'x');
    await store.flush(1n);
    expect(() => store.get('a')).toThrow(KeyNotLoadedError);
    await store.close();
  });

  it('should read committed keys without prefetch when strictPrefetch is off', async () => {
    const store = new MemoryTaskStore(storeOptions<string>(), { strictPrefetch: false });
    store.put('a', 'x');
    await store.flush(1n);
    expect(store.get('a')).toBe('x');
    expect(store.get('b')).toBeUndefined();
    await store.close();
  });

  it('should refuse a second store when a disk is already open', async () => {
    const disk = new MemoryDisk();
    const first = new MemoryTaskStore(storeOptions(), { disk });
    expect(() => new MemoryTaskStore(storeOptions(), { disk })).toThrow(/already open/);
    await first.close();
    await new MemoryTaskStore(storeOptions(), { disk }).close();
  });

  it('should fail closed with the injected error as cause when a write is made to fail', async () => {
    const store = new MemoryTaskStore(storeOptions<string>());
    const failure = new Error('disk full');
    store.failNextWrite(failure);
    store.put('a', 'x');
    await expect(store.flush(1n)).rejects.toBe(failure);
    expect(() => store.get('a')).toThrow(StoreFailedError);
    expect(store.disk.keys()).toEqual([]);
    await store.close();
  });
});
