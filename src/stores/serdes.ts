// Value serdes for state stores. Each returns fresh bytes and fresh values, so neither the caller
// nor the store can change the other's copy by mutating it.
import assert from 'node:assert/strict';
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
  };
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
