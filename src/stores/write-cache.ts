// The uncommitted writes of one transaction. One entry per key: the last write wins, and
// a Map keeps the position of the key's first write, which is the order the changelog wants.
import { compareKeys, inRange } from './keys.ts';
import { type ChangelogEntry } from './types.ts';

/** An uncommitted write: `bytes` null is a delete (and then `value` is undefined). */
export interface PendingWrite<V> {
  readonly value: V | undefined;
  readonly bytes: Buffer | null;
}

export class WriteCache<V> {
  readonly #writes = new Map<string, PendingWrite<V>>();

  get size(): number {
    return this.#writes.size;
  }

  lookup(key: string): PendingWrite<V> | undefined {
    return this.#writes.get(key);
  }

  has(key: string): boolean {
    return this.#writes.has(key);
  }

  put(key: string, value: V, bytes: Buffer): void {
    this.#writes.set(key, { value, bytes });
  }

  delete(key: string): void {
    this.#writes.set(key, { value: undefined, bytes: null });
  }

  entries(): IterableIterator<[string, PendingWrite<V>]> {
    return this.#writes.entries();
  }

  /** The writes as changelog entries, in first-write order. */
  changelog(): ChangelogEntry[] {
    const entries: ChangelogEntry[] = [];
    for (const [key, write] of this.#writes) entries.push({ key, value: write.bytes });
    return entries;
  }

  /** A sorted snapshot of the writes in [gte, lt), so a range is not disturbed by later writes. */
  snapshot(gte: string | undefined, lt: string | undefined): [string, PendingWrite<V>][] {
    return WriteCache.snapshotLayers([this], gte, lt);
  }

  /** A sorted snapshot of the writes in [gte, lt) of layers given oldest first: a later layer's write wins. */
  static snapshotLayers<V>(layers: ReadonlyArray<WriteCache<V> | null>, gte: string | undefined, lt: string | undefined): [string, PendingWrite<V>][] {
    const selected = new Map<string, PendingWrite<V>>();
    for (const layer of layers) {
      if (layer === null) continue;
      for (const [key, write] of layer.#writes) if (inRange(key, gte, lt)) selected.set(key, write);
    }
    return [...selected].sort((a, b) => compareKeys(a[0], b[0]));
  }

  clear(): void {
    this.#writes.clear();
  }
}
