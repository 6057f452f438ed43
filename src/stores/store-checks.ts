// The pre-conditions a task store checks before it writes (TigerBeetle style: check data before it is
// written): its options, the changelog offset of a flush or a restore batch, which may never go
// backwards (Quix Streams' InvalidChangelogOffset), and what a restore batch writes (the last record of
// each key). A failed assertion is a programmer error.
import assert from 'node:assert/strict';
import { assertKey } from './keys.ts';
import { type ChangelogEntry, InvalidChangelogOffsetError, type StoreOptions } from './types.ts';

export function assertOptions<V>(options: StoreOptions<V>): void {
  assert(typeof options.name === 'string' && options.name.length > 0, 'store name must be a non-empty string');
  const serde = options.valueSerde;
  assert(
    typeof serde?.serialize === 'function' && typeof serde.deserialize === 'function',
    `store ${options.name}: valueSerde needs serialize and deserialize`,
  );
  assert(typeof options.logged === 'boolean', `store ${options.name}: logged must be a boolean`);
}

/** A flush of `writes` entries reaching `offset`, over a store whose checkpoint is `checkpoint`. */
export function checkFlushOffset<V>(
  options: StoreOptions<V>,
  writes: number,
  checkpoint: bigint | null,
  offset: bigint | null,
): void {
  if (offset === null) {
    // A logged store's writes went to its changelog, so the offset they reached must come with them.
    assert(
      !options.logged || writes === 0,
      `store ${options.name}: flush of ${writes} logged writes without a changelog offset`,
    );
    return;
  }
  assert(options.logged, `store ${options.name}: an unlogged store has no changelog offset to flush`);
  checkOffset(options.name, checkpoint, offset);
}

/** A restore batch: its offset, its keys, and every value passes `checkValue` (it deserializes, or its format checks; throws if not). */
export function checkRestore<V>(
  options: StoreOptions<V>,
  checkpoint: bigint | null,
  entries: ChangelogEntry[],
  nextOffset: bigint,
  checkValue: (key: string, bytes: Buffer) => unknown,
): void {
  assert(options.logged, `store ${options.name}: an unlogged store has no changelog to restore`);
  checkOffset(options.name, checkpoint, nextOffset);
  for (const { key, value } of entries) {
    assertKey(options.name, key);
    if (value !== null && !Buffer.isBuffer(value))
      assert.fail(`store ${options.name}: restored value of ${JSON.stringify(key)} is not a Buffer`);
    // Check before writing: a record that does not deserialize is found here, not in some later batch.
    if (value !== null) checkValue(key, value);
  }
}

function checkOffset(store: string, checkpoint: bigint | null, offset: bigint): void {
  assert(typeof offset === 'bigint' && offset >= 0n, `store ${store}: changelog offset must be a non-negative bigint`);
  if (checkpoint !== null && offset < checkpoint) {
    throw new InvalidChangelogOffsetError(store, checkpoint, offset);
  }
}

/**
 * The last entry of each key, in the order of those last entries, without the keys `skip` names: what
 * applying `entries` one by one would leave in the store, with one write per key.
 */
export function lastWritePerKey(entries: ChangelogEntry[], skip?: (key: string) => boolean): ChangelogEntry[] {
  const seen = new Set<string>();
  const kept: ChangelogEntry[] = [];
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i] as ChangelogEntry;
    if (seen.has(entry.key)) continue;
    seen.add(entry.key);
    if (skip === undefined || !skip(entry.key)) kept.push(entry);
  }
  return kept.reverse();
}
