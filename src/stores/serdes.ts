// Value serdes for state stores. Each returns fresh bytes and fresh values, so neither the caller
// nor the store can change the other's copy by mutating it.
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import type { Serde } from './types.ts';

/** JSON text in UTF-8. `T` is trusted, not checked: validate values that come from outside. */
export function jsonSerde<T>(): Serde<T> {
  return {
    serialize(value: T): Buffer {
      const text = JSON.stringify(value);
      // JSON.stringify returns undefined for undefined, functions and symbols: they have no JSON form.
      assert(typeof text === 'string', 'jsonSerde: value has no JSON representation');
      return Buffer.from(text, 'utf8');
    },
    deserialize(bytes: Buffer): T {
      return JSON.parse(bytes.toString('utf8')) as T;
    },
    check: checkJsonFormat,
  };
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;

/**
 * jsonSerde's restore check, for values whose changelog MAC verified (Serde.check). The MAC proves the
 * bytes are exactly what an engine of this application serialized, so a full JSON.parse of each (about
 * a quarter of restore's CPU) would only find what the writer itself could get wrong. What that is,
 * and what is refused here: bytes of another encoding (a version that stored, say, MessagePack, whose
 * maps start with 0x80–0x8f or 0xde/0xdf, or any non-UTF-8 bytes: isUtf8, native), and a value cut short
 * or padded (an object, array or string must close with its own bracket at the last byte; JSON.stringify
 * writes no whitespace around a value). A scalar is short and fully parsed. What passes unseen is a
 * writer that emits well-bracketed UTF-8 that is not JSON: JSON.stringify does not, and a read of such a
 * value still fails closed (StoreCorruptedError when the task reads the key).
 */
function checkJsonFormat(bytes: Buffer): void {
  const n = bytes.length;
  const first = bytes[0];
  const last = bytes[n - 1];
  const bracketed =
    n >= 2 &&
    ((first === OPEN_BRACE && last === CLOSE_BRACE) ||
      (first === OPEN_BRACKET && last === CLOSE_BRACKET) ||
      (first === QUOTE && last === QUOTE));
  if (bracketed) {
    if (!isUtf8(bytes)) throw new Error('not UTF-8 text');
    return;
  }
  if (first === OPEN_BRACE || first === OPEN_BRACKET || first === QUOTE || n > 32)
    throw new Error('not a whole JSON value');
  JSON.parse(bytes.toString('utf8'));
}

/** A UTF-8 string. */
export const stringSerde: Serde<string> = {
  serialize(value: string): Buffer {
    assert(typeof value === 'string', 'stringSerde: value is not a string');
    // A lone surrogate would be replaced by U+FFFD, so the value would not read back as written.
    assert(value.isWellFormed(), 'stringSerde: value is not well-formed UTF-16');
    return Buffer.from(value, 'utf8');
  },
  deserialize(bytes: Buffer): string {
    return bytes.toString('utf8');
  },
};

/** Raw bytes, copied both ways: a Buffer cannot be frozen, so copying is what keeps the store's copy private. */
export const bufferSerde: Serde<Buffer> = {
  serialize(value: Buffer): Buffer {
    assert(Buffer.isBuffer(value), 'bufferSerde: value is not a Buffer');
    return Buffer.from(value);
  },
  deserialize(bytes: Buffer): Buffer {
    return Buffer.from(bytes);
  },
};
