import { describe, expect, it } from 'vitest';
import { bufferSerde, jsonSerde, stringSerde } from '../../../src/stores/serdes.ts';
import { compareKeys } from '../../../src/stores/keys.ts';
import fc from 'fast-check';

describe('serdes', () => {
  it('should round-trip a value when it is JSON', () => {
    const serde = jsonSerde<{ a: string; b: number[] }>();
    const value = { a: 'é', b: [1, 2] };
    expect(serde.serialize(value).toString('utf8')).toBe('{"a":"é","b":[1,2]}');
    expect(serde.deserialize(serde.serialize(value))).toEqual(value);
  });

  it('should refuse a value when it has no JSON form', () => {
    expect(() => jsonSerde<undefined>().serialize(undefined)).toThrow(/no JSON representation/);
    expect(() => jsonSerde<bigint>().serialize(1n)).toThrow(TypeError);
  });

  it('should refuse a string when it holds a lone surrogate', () => {
    expect(stringSerde.deserialize(stringSerde.serialize('héllo'))).toBe('héllo');
    expect(() => stringSerde.serialize('\ud800')).toThrow(/well-formed/);
  });

  it('should copy bytes both ways when serializing buffers', () => {
    const original = Buffer.from([1, 2, 3]);
    const bytes = bufferSerde.serialize(original);
    original[0] = 9;
    expect([...bytes]).toEqual([1, 2, 3]);
    const read = bufferSerde.deserialize(bytes);
    read[1] = 9;
    expect([...bytes]).toEqual([1, 2, 3]);
  });
});

describe('compareKeys', () => {
  it('should order strings as their UTF-8 bytes when any two well-formed strings are compared', () => {
    const text = fc.string({ unit: 'grapheme', maxLength: 6 });
    fc.assert(
      fc.property(text, text, (a, b) => {
        const expected = Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)));
        expect(Math.sign(compareKeys(a, b))).toBe(expected);
      }),
      { numRuns: 2000 },
    );
    expect(compareKeys('\u{1f600}', '\ue000')).toBeGreaterThan(0);
  });
});
