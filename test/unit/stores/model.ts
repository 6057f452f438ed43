// Model-based property test: any sequence of writes, reads, flushes, aborts and restarts leaves a
// store equal to a plain Map of committed values with a Map of pending writes on top.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyNotLoadedError, type TaskStore } from '../../../src/stores/types.ts';
import { collect, type StoreHarness } from './harness.ts';

type Op =
  | { op: 'put'; key: string; n: number }
  | { op: 'delete'; key: string }
  | { op: 'get'; key: string }
  | { op: 'peek'; key: string }
  | { op: 'range'; gte: string | undefined; lt: string | undefined; limit: number | undefined }
  | { op: 'flush' }
  | { op: 'abort' }
  | { op: 'reopen' };

interface Value {
  n: number;
}

// Few keys, so operations collide; some straddle the UTF-16 versus UTF-8 order split.
const KEYS = ['a', 'b', 'ab', 'é', '\ue000', '\u{1f600}', ''];
const key = fc.constantFrom(...KEYS);
const bound = fc.option(key, { nil: undefined });

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('put' as const), key, n: fc.integer() }),
  fc.record({ op: fc.constant('delete' as const), key }),
  fc.record({ op: fc.constant('get' as const), key }),
  fc.record({ op: fc.constant('peek' as const), key }),
  fc.record({ op: fc.constant('range' as const), gte: bound, lt: bound, limit: fc.option(fc.nat(5), { nil: undefined }) }),
  fc.constant({ op: 'flush' as const }),
  fc.constant({ op: 'abort' as const }),
  fc.constant({ op: 'reopen' as const }),
);

const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

class Model {
  readonly committed = new Map<string, number>();
  pending = new Map<string, number | null>();
  checkpoint: bigint | null = null;

  read(key: string): Value | undefined {
    const pending = this.pending.get(key);
    if (pending === null) return undefined;
    const n = pending ?? this.committed.get(key);
    return n === undefined ? undefined : { n };
  }

  range(gte: string | undefined, lt: string | undefined, limit: number | undefined): [string, Value][] {
    const keys = new Set([...this.committed.keys(), ...this.pending.keys()]);
    const inRange = [...keys]
      .filter((k) => (gte === undefined || utf8Order(k, gte) >= 0) && (lt === undefined || utf8Order(k, lt) < 0))
      .sort(utf8Order)
      .flatMap((k): [string, Value][] => {
        const value = this.read(k);
        return value === undefined ? [] : [[k, value]];
      });
    return inRange.slice(0, limit ?? inRange.length);
  }

  /** Commits the pending writes at an offset advanced by one changelog record per key. */
  flush(): bigint {
    for (const [k, n] of this.pending) {
      if (n === null) this.committed.delete(k);
      else this.committed.set(k, n);
    }
    this.checkpoint = (this.checkpoint ?? 0n) + BigInt(this.pending.size);
    this.pending = new Map();
    return this.checkpoint;
  }
}

export function describeStoreModel(harness: StoreHarness, numRuns: number): void {
  describe(`${harness.label} model`, () => {
    it('should match a Map model when any sequence of operations is applied', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 40 }), fc.integer({ min: 0, max: 3 }), async (ops, cacheEntriesMax) => {
          const location = await harness.location();
          const options = { cacheEntriesMax };
          let store = await harness.open<Value>(location, options);
          const model = new Model();
          try {
            for (const step of ops) store = await apply(step, store, model, async () => {
              await store.close();
              return harness.open<Value>(location, options);
            });
            expect(await collect(store.range())).toEqual(model.range(undefined, undefined, undefined));
          } finally {
            await store.close();
            await harness.cleanup();
          }
        }),
        { numRuns },
      );
    });
  });
}

async function apply(step: Op, store: TaskStore<Value>, model: Model, reopen: () => Promise<TaskStore<Value>>): Promise<TaskStore<Value>> {
  switch (step.op) {
    case 'put':
      store.put(step.key, { n: step.n });
      model.pending.set(step.key, step.n);
      return store;
    case 'delete':
      store.delete(step.key);
      model.pending.set(step.key, null);
      return store;
    case 'get':
      await store.prefetch([step.key]);
      expect(store.get(step.key)).toEqual(model.read(step.key));
      return store;
    case 'peek':
      peek(store, model, step.key);
      return store;
    case 'range':
      expect(await collect(store.range({ gte: step.gte, lt: step.lt, limit: step.limit }))).toEqual(model.range(step.gte, step.lt, step.limit));
      return store;
    case 'flush':
      await store.flush(model.flush());
      expect(await store.checkpoint()).toBe(model.checkpoint);
      return store;
    case 'abort':
      store.abort();
      model.pending = new Map();
      return store;
    case 'reopen': {
      const reopened = await reopen();
      model.pending = new Map();
      expect(await reopened.checkpoint()).toBe(model.checkpoint);
      return reopened;
    }
  }
}

/** A read without prefetch may be refused, but must never return a wrong value. */
function peek(store: TaskStore<Value>, model: Model, key: string): void {
  try {
    expect(store.get(key)).toEqual(model.read(key));
  } catch (error) {
    if (!(error instanceof KeyNotLoadedError)) throw error;
    expect(model.pending.has(key)).toBe(false);
  }
}
