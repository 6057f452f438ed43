// The reader factory (src/kafka/reader.ts): one consumer + Fetcher pair, with its fetch bounds checked
// before any client exists. Building a consumer opens no connection, so no broker is needed here.
import { describe, expect, it } from 'vitest';
import { Fetcher } from '../../../src/kafka/fetcher.ts';
import { createReader } from '../../../src/kafka/reader.ts';

const fetch = { maxWaitMs: 100, minBytes: 1, maxBytes: 1024, partitionMaxBytes: 512 };
const base = { clientId: 'test-reader', groupId: 'test-group', bootstrapBrokers: ['127.0.0.1:1'] };

describe('createReader', () => {
  it('should pair a consumer of the given group with a Fetcher when the options are valid', async () => {
    const reader = createReader({ ...base, fetch });
    try {
      expect(reader.consumer.groupId).toBe('test-group');
      expect(reader.fetcher).toBeInstanceOf(Fetcher);
    } finally {
      await reader.consumer.close(true);
    }
  });

  it.each([
    ['maxWaitMs', -1],
    ['minBytes', 1.5],
    ['maxBytes', Number.NaN],
    ['partitionMaxBytes', Number.POSITIVE_INFINITY],
  ])('should refuse fetch option %s = %s', (name, value) => {
    expect(() => createReader({ ...base, fetch: { ...fetch, [name]: value } })).toThrow(
      new RegExp(`fetch option ${name} must be a non-negative integer`),
    );
  });

  it('should refuse a partition bound above the response bound', () => {
    expect(() => createReader({ ...base, fetch: { ...fetch, partitionMaxBytes: 2048 } })).toThrow(/partitionMaxBytes/);
  });
});
