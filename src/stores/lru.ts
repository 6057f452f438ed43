// A bounded least-recently-used map. A Map iterates in insertion order, so re-inserting a key on
// every hit keeps the least recently used key first, where eviction takes it from.
import assert from 'node:assert/strict';

export class LruMap<K, V> {
  readonly entriesMax: number;
  readonly #map = new Map<K, V>();

  constructor(entriesMax: number) {
    assert(
      Number.isSafeInteger(entriesMax) && entriesMax >= 0,
      `LruMap: entriesMax must be a non-negative integer, got ${entriesMax}`,
    );
    this.entriesMax = entriesMax;
  }

  get size(): number {
    return this.#map.size;
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }

  /** Returns the value and marks the key most recently used. */
  get(key: K): V | undefined {
    if (!this.#map.has(key)) return undefined;
    const value = this.#map.get(key) as V;
    this.#map.delete(key);
    this.#map.set(key, value);
    return value;
  }

  /** Inserts or replaces the value as most recently used, then evicts down to the bound. */
  set(key: K, value: V): void {
    this.#map.delete(key);
    if (this.entriesMax === 0) return;
    this.#map.set(key, value);
    if (this.#map.size > this.entriesMax) this.#evictOldest();
    assert(this.#map.size <= this.entriesMax);
  }

  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }

  #evictOldest(): void {
    const oldest = this.#map.keys().next();
    assert(oldest.done !== true);
    this.#map.delete(oldest.value);
  }
}
