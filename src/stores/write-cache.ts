// The uncommitted writes of one transaction. One entry per key: the last write wins, and
// a Map keeps the position of the key's first write, which is the order the changelog wants.
import { compareKeys, inRange } from './keys.ts';
import type { ChangelogEntry } from './types.ts';

/** An uncommitted write: `bytes` null is a delete (and then `value` is undefined). */
export interface PendingWrite<V> {
  readonly value: V | undefined;
  readonly bytes: Buffer | null;
}

export class WriteCache<V> {
  readonly #writes = new Map<string, PendingWrite<V>>();
  /**
   * Undo log since the last mark(): key, previous write (undefined = none), key, previous write, ...
   * A flat array reused from mark to mark, so recording a write allocates nothing once it has grown.
   */
  readonly #undo: Array<string | PendingWrite<V> | undefined> = [];
  #undoTop = 0;

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
    this.#remember(key);
    this.#writes.set(key, { value, bytes });
  }

  delete(key: string): void {
    this.#remember(key);
    this.#writes.set(key, { value: undefined, bytes: null });
  }

  /** A savepoint: rollbackToMark() undoes every write after it (the engine marks before each record). */
  mark(): void {
    this.#undoTop = 0;
  }

  /**
   * Undoes the writes since the last mark, newest first: a key first written after the mark is removed,
   * another gets its previous write back in its place, so the first-write order of the rest is unchanged.
   */
  rollbackToMark(): void {
    const undo = this.#undo;
    for (let i = this.#undoTop - 2; i >= 0; i -= 2) {
      const key = undo[i] as string;
      const previous = undo[i + 1] as PendingWrite<V> | undefined;
      if (previous === undefined) this.#writes.delete(key);
      else this.#writes.set(key, previous);
    }
    this.#undoTop = 0;
  }

  #remember(key: string): void {
    this.#undo[this.#undoTop++] = key;
    this.#undo[this.#undoTop++] = this.#writes.get(key);
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
  static snapshotLayers<V>(
    layers: ReadonlyArray<WriteCache<V> | null>,
    gte: string | undefined,
    lt: string | undefined,
  ): [string, PendingWrite<V>][] {
    const selected = new Map<string, PendingWrite<V>>();
    for (const layer of layers) {
      if (layer === null) continue;
      for (const [key, write] of layer.#writes) if (inRange(key, gte, lt)) selected.set(key, write);
    }
    return [...selected].sort((a, b) => compareKeys(a[0], b[0]));
  }

  clear(): void {
    this.#writes.clear();
    this.#undo.length = 0;
    this.#undoTop = 0;
  }
}
