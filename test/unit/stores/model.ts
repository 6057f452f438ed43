// Model-based property test: any sequence of writes, reads, commits (prepared, then flushed), aborts,
// savepoints, rollbacks to them and restarts leaves a store equal to a plain Map of committed values with a Map of committing
// writes and a Map of pending writes on top.
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
  | { op: 'prepare' }
  | { op: 'flush' }
  | { op: 'abort' }
  | { op: 'reopen' }
  | { op: 'savepoint' }
  | { op: 'rollback' };

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
  fc.record({
    op: fc.constant('range' as const),
    gte: bound,
    lt: bound,
    limit: fc.option(fc.nat(5), { nil: undefined }),
  }),
  fc.constant({ op: 'prepare' as const }),
  fc.constant({ op: 'flush' as const }),
  fc.constant({ op: 'abort' as const }),
  fc.constant({ op: 'reopen' as const }),
  fc.constant({ op: 'savepoint' as const }),
  fc.constant({ op: 'rollback' as const }),
);

const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

class Model {
  readonly committed = new Map<string, number>();
  /** The writes of a prepared commit, until it is flushed or aborted. */
  committing: Map<string, number | null> | null = null;
  pending = new Map<string, number | null>();
  /** The pending writes at the last savepoint; a new write layer (prepare, abort, reopen) starts empty. */
  saved = new Map<string, number | null>();
  checkpoint: bigint | null = null;

  read(key: string): Value | undefined {
    const write = this.pending.has(key) ? this.pending.get(key) : this.committing?.get(key);
    if (write === null) return undefined;
    const n = write ?? this.committed.get(key);
    return n === undefined ? undefined : { n };
  }

  /** Whether a read without prefetch must find the key (it was written and not yet flushed). */
  written(key: string): boolean {
    return this.pending.has(key) || (this.committing?.has(key) ?? false);
  }

  prepare(): void {
    this.committing = this.pending;
    this.pending = new Map();
    this.saved = new Map();
  }

  savepoint(): void {
    this.saved = new Map(this.pending);
  }

  /** Back to the savepoint, which stays the savepoint (same order of first writes as then). */
  rollback(): void {
    this.pending = new Map(this.saved);
  }

  range(gte: string | undefined, lt: string | undefined, limit: number | undefined): [string, Value][] {
    const keys = new Set([...this.committed.keys(), ...(this.committing?.keys() ?? []), ...this.pending.keys()]);
    const inRange = [...keys]
      .filter((k) => (gte === undefined || utf8Order(k, gte) >= 0) && (lt === undefined || utf8Order(k, lt) < 0))
      .sort(utf8Order)
      .flatMap((k): [string, Value][] => {
        const value = this.read(k);
        return value === undefined ? [] : [[k, value]];
      });
    return inRange.slice(0, limit ?? inRange.length);
  }

  /** Commits the committing writes (the pending ones if none were prepared) at an offset advanced by one changelog record per key. */
  flush(): bigint {
    if (this.committing === null) this.prepare();
    const committing = this.committing!;
    for (const [k, n] of committing) {
      if (n === null) this.committed.delete(k);
      else this.committed.set(k, n);
    }
    this.checkpoint = (this.checkpoint ?? 0n) + BigInt(committing.size);
    this.committing = null;
    return this.checkpoint;
  }

  abort(): void {
    this.pending = new Map();
    this.saved = new Map();
    this.committing = null;
  }
}

export function describeStoreModel(harness: StoreHarness, numRuns: number): void {
  describe(`${harness.label} model`, () => {
    it('should match a Map model when any sequence of operations is applied', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(op, { maxLength: 40 }),
          fc.integer({ min: 0, max: 3 }),
          async (ops, cacheEntriesMax) => {
            const location = await harness.location();
            const options = { cacheEntriesMax };
            let store = await harness.open<Value>(location, options);
            const model = new Model();
            try {
              for (const step of ops)
                store = await apply(step, store, model, async () => {
                  await store.close();
                  return harness.open<Value>(location, options);
                });
              expect(await collect(store.range())).toEqual(model.range(undefined, undefined, undefined));
            } finally {
              await store.close();
              await harness.cleanup();
            }
          },
        ),
        { numRuns },
      );
    });
  });
}

async function apply(
  step: Op,
  store: TaskStore<Value>,
  model: Model,
  reopen: () => Promise<TaskStore<Value>>,
): Promise<TaskStore<Value>> {
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
      expect(await collect(store.range({ gte: step.gte, lt: step.lt, limit: step.limit }))).toEqual(
        model.range(step.gte, step.lt, step.limit),
      );
      return store;
    case 'prepare': {
      if (store.commitInProgress()) return store; // One commit at a time, as the engine does.
      const pending = [...model.pending].map(([k, n]) => ({
        key: k,
        value: n === null ? null : Buffer.from(JSON.stringify({ n }), 'utf8'),
      }));
      expect(store.prepareCommit()).toEqual(pending);
      model.prepare();
      expect(store.commitNeeded()).toBe(false);
      return store;
    }
    case 'flush':
      await store.flush(model.flush());
      expect(await store.checkpoint()).toBe(model.checkpoint);
      expect(store.commitInProgress()).toBe(false);
      return store;
    case 'abort':
      store.abort();
      model.abort();
      return store;
    case 'savepoint':
      store.savepoint();
      model.savepoint();
      return store;
    case 'rollback':
      store.rollbackToSavepoint();
      model.rollback();
      return store;
    case 'reopen': {
      const reopened = await reopen();
      model.abort();
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
    expect(model.written(key)).toBe(false);
  }
}
