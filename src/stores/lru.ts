// A bounded least-recently-used map. A Map iterates in insertion order, so re-inserting a key on
// every hit keeps the least recently used key first, where eviction takes it from.
//
// Eviction does not ask a new `keys()` iterator for the first key: a Map keeps deleted entries as holes
// until it rehashes, and a new iterator walks every hole at the front, so under steady eviction each
// `set` cost O(entries) (a cache of 100,000 took ~75 µs per set and stalled the engine on large state).
// One iterator is kept instead: every entry before its position has been evicted or re-inserted
// behind it, so its next key is the oldest live one and each hole is walked once. It is renewed after
// `entriesMax` operations, so it never holds many of the Map's outgrown tables; a renewal walks the
// holes once, which those operations pay for. Not the `lru-cache` package: it allocates arrays of
// `max` slots up front, per cache, and each task store has one (100,000 entries by default).
import assert from 'node:assert/strict';

export class LruMap<K, V> {
  readonly entriesMax: number;
  readonly #map = new Map<K, V>();
  #oldest: MapIterator<K> | undefined;
  #operations = 0;

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
    this.#counted();
    return value;
  }

  /** Returns the value without marking it used (the key keeps its place in the eviction order). */
  peek(key: K): V | undefined {
    return this.#map.get(key);
  }

  /** Inserts or replaces the value as most recently used, then evicts down to the bound. */
  set(key: K, value: V): void {
    this.#map.delete(key);
    if (this.entriesMax === 0) return;
    this.#map.set(key, value);
    this.#counted();
    if (this.#map.size > this.entriesMax) this.#evictOldest();
    assert(this.#map.size <= this.entriesMax);
  }

  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
    this.#oldest = undefined;
  }

  #counted(): void {
    if (++this.#operations < this.entriesMax) return;
    this.#operations = 0;
    this.#oldest = undefined;
  }

  #evictOldest(): void {
    let oldest = this.#oldest?.next();
    if (oldest === undefined || oldest.done === true) {
      this.#oldest = this.#map.keys();
      oldest = this.#oldest.next();
    }
    assert(oldest.done !== true);
    this.#map.delete(oldest.value);
  }
}
