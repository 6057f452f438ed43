// Store keys are strings kept on disk as UTF-8. LevelDB orders them by those bytes, so every
// in-memory ordering (range merging, the test double) must use the same order, not JS `<`.
import assert from 'node:assert/strict';

/** Whether `key` is a string every store can keep: assertKey's rule, as a test. */
export function isStorableKey(key: unknown): key is string {
  return typeof key === 'string' && key.isWellFormed();
}

/** Asserts `key` is a string that survives UTF-8 encoding unchanged (no lone surrogates). */
export function assertKey(store: string, key: string): void {
  // Called for every key of every record: the messages are built only on failure.
  if (typeof key !== 'string') assert.fail(`store ${store}: key must be a string, got ${typeof key}`);
  // Lone surrogates encode to U+FFFD, so two different keys would share one row.
  if (!key.isWellFormed()) assert.fail(`store ${store}: key ${JSON.stringify(key)} is not well-formed UTF-16`);
}

/**
 * Compares two well-formed strings in UTF-8 byte order (which is code point order).
 * UTF-16 code unit order differs only where a surrogate (U+D800–DFFF, part of a code point
 * ≥ U+10000) meets a unit in U+E000–FFFF; shifting both ranges fixes exactly that case.
 */
export function compareKeys(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

function codePointRank(unit: number): number {
  if (unit >= 0xe000) return unit - 0x800;
  if (unit >= 0xd800) return unit + 0x2000;
  return unit;
}

/** Whether `key` lies in the half-open range [gte, lt); an absent bound is unbounded. */
export function inRange(key: string, gte: string | undefined, lt: string | undefined): boolean {
  if (gte !== undefined && compareKeys(key, gte) < 0) return false;
  if (lt !== undefined && compareKeys(key, lt) >= 0) return false;
  return true;
}
