// The merge behind TaskStore.range: committed entries (from the backend, in key order) merged with a
// sorted snapshot of the uncommitted writes. A write overrides the committed entry of its key, a delete
// hides it; at most `limit` entries are yielded.
import { compareKeys } from './keys.ts';
import type { PendingWrite } from './write-cache.ts';

/** Merges `committed` with `writes` (sorted, one per key); returns the committed iterator when done. */
export async function* mergeRange<V>(
  committed: AsyncIterator<[string, Buffer]>,
  writes: [string, PendingWrite<V>][],
  limit: number,
  deserialize: (key: string, bytes: Buffer) => V,
): AsyncGenerator<[string, V]> {
  try {
    let current = await nextEntry(committed);
    let emitted = 0;
    for (let w = 0; emitted < limit; ) {
      const write: [string, PendingWrite<V>] | undefined = writes[w];
      const order = orderOf(current, write);
      if (order === null) return;
      if (order < 0 && current !== undefined) {
        yield [current[0], deserialize(current[0], current[1])];
        emitted++;
        current = await nextEntry(committed);
        continue;
      }
      if (order === 0) current = await nextEntry(committed); // The uncommitted write shadows this row.
      w++;
      if (write !== undefined && write[1].bytes !== null) {
        yield [write[0], write[1].value as V];
        emitted++;
      }
    }
  } finally {
    await committed.return?.();
  }
}

async function nextEntry(iterator: AsyncIterator<[string, Buffer]>): Promise<[string, Buffer] | undefined> {
  const result = await iterator.next();
  return result.done === true ? undefined : result.value;
}

/** Which side of the merge comes next: negative = committed, 0 = both (same key), positive = write, null = done. */
function orderOf(committed: [string, Buffer] | undefined, write: [string, unknown] | undefined): number | null {
  if (committed === undefined) return write === undefined ? null : 1;
  if (write === undefined) return -1;
  return compareKeys(committed[0], write[0]);
}
