// The read side of a task store: the values pinned by prefetch for the current transaction (and for the
// committing one), and the bounded LRU cache of committed values. Absence is cached like a value.
// CachedTaskStore owns the write layers and drives this cache at each step of its transaction cycle
// (prefetch → prepareCommit → flush | abort); the rules of which loads stay valid live here.
import { assertKey } from './keys.ts';
import { LruMap } from './lru.ts';
import type { WriteCache } from './write-cache.ts';

/** Marks a key known to be absent from the committed state, so absence is cached like a value. */
export const ABSENT: unique symbol = Symbol('absent');
export type Loaded<V> = V | typeof ABSENT;

export class ReadCache<V> {
  /**
   * Values loaded by prefetch for the current transaction: never evicted before its flush or abort.
   * Committed values, or values of the committing layer (which the current transaction builds on).
   */
  #pinned = new Map<string, Loaded<V>>();
  /** Whether #pinned holds values taken from a committing layer that has not been flushed yet. */
  #pinnedUncommitted = false;
  /** The pins of the committing transaction, returned to the cache when it is flushed. */
  #committingPinned = new Map<string, Loaded<V>>();
  /** Committed values only, so an abort never has to repair it. */
  readonly #cache: LruMap<string, Loaded<V>>;

  constructor(entriesMax: number) {
    this.#cache = new LruMap(entriesMax);
  }

  /** A pinned load of the current transaction, else a committed value from the cache. */
  get(key: string): Loaded<V> | undefined {
    const pinned = this.#pinned.get(key);
    return pinned !== undefined ? pinned : this.#cache.get(key);
  }

  /** A committed value from the cache only (interactive queries: never a pin of an uncommitted layer). */
  committed(key: string): Loaded<V> | undefined {
    return this.#cache.get(key);
  }

  /**
   * Pins the keys already known (the committing layer, its pins, the committed cache), so the
   * no-eviction promise does not depend on when the cache happens to change; returns the keys not yet
   * known, once each. Keys the current writes hold need no load.
   */
  pinKnown(store: string, keys: Iterable<string>, writes: WriteCache<V>, committing: WriteCache<V> | null): string[] {
    const missing = new Set<string>();
    for (const key of keys) {
      assertKey(store, key);
      if (writes.has(key) || this.#pinned.has(key)) continue;
      // The committing layer is dropped from memory once flushed: pin its value for this transaction.
      const pending = committing?.lookup(key);
      if (pending !== undefined) {
        this.#pinned.set(key, pending.bytes === null ? ABSENT : (pending.value as V));
        this.#pinnedUncommitted = true;
        continue;
      }
      const known = this.#committingPinned.get(key) ?? this.#cache.get(key);
      if (known === undefined) missing.add(key);
      else this.#pinned.set(key, known);
    }
    return [...missing];
  }

  /** Pins a value loaded from the backend for the current transaction. */
  pin(key: string, loaded: Loaded<V>): void {
    this.#pinned.set(key, loaded);
  }

  /** prepareCommit: the current transaction's pins become the committing transaction's. */
  startCommit(): void {
    this.#committingPinned = this.#pinned;
    this.#pinned = new Map();
  }

  /**
   * After a flush: the committing transaction's pinned loads it did not overwrite, then its written
   * values, become cached. The current transaction's pins stay pinned, and are committed values now.
   */
  flushed(committing: WriteCache<V>): void {
    this.#unpin(this.#committingPinned, committing);
    for (const [key, write] of committing.entries())
      this.#cache.set(key, write.bytes === null ? ABSENT : (write.value as V));
    this.#pinnedUncommitted = false;
  }

  /**
   * After an abort (both write layers dropped, `writes` the emptied current layer): pins return to the
   * cache, except pins taken from a committing layer that never reached the store, which are not
   * committed values.
   */
  aborted(writes: WriteCache<V>, hadCommitting: boolean): void {
    if (hadCommitting) this.#unpin(this.#committingPinned, writes);
    if (this.#pinnedUncommitted) this.#pinned.clear();
    else this.#unpin(this.#pinned, writes);
    this.#pinnedUncommitted = false;
  }

  /** Forgets a key everywhere (a restore batch rewrote it). */
  forget(key: string): void {
    this.#pinned.delete(key);
    this.#committingPinned.delete(key);
    this.#cache.delete(key);
  }

  clear(): void {
    this.#pinned.clear();
    this.#committingPinned.clear();
    this.#pinnedUncommitted = false;
    this.#cache.clear();
  }

  /** Returns pinned loads to the bounded cache; values `overwritten` holds are stale and dropped. */
  #unpin(pinned: Map<string, Loaded<V>>, overwritten: WriteCache<V>): void {
    for (const [key, loaded] of pinned) if (!overwritten.has(key)) this.#cache.set(key, loaded);
    pinned.clear();
  }
}
