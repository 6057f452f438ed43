import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Partitioners } from 'kafkajs';
import { defaultPartitioner } from '@platformatic/kafka';
import { javaCompatiblePartitioner, partitionForKey, positiveMurmur2 } from '../../../src/kafka/partitioner.ts';

// KafkaJS 2.x DefaultPartitioner (= the old JavaCompatiblePartitioner): murmur2 & 0x7fffffff % partitions.
function kafkajsPartition(key: Buffer | string, partitions: number): number {
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
    partitionId,
    leader: 1,
    replicas: [1],
    isr: [1],
    offlineReplicas: [],
    partitionErrorCode: 0,
  }));
  return partitioner({ topic: 't', partitionMetadata, message: { key, value: null } });
}

describe('partitionForKey', () => {
  it('should match the Java client murmur2 test vectors when hashing known keys', () => {
    // org.apache.kafka.common.utils.UtilsTest#testMurmur2
    const vectors: Array<[string, number]> = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [key, hash] of vectors) {
      expect(positiveMurmur2(key)).toBe(hash & 0x7fffffff);
      expect(partitionForKey(key, 12)).toBe((hash & 0x7fffffff) % 12);
    }
  });

  it('should agree with the KafkaJS default partitioner when keys are random byte strings', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 64 }),
        fc.integer({ min: 1, max: 256 }),
        (bytes, partitions) => {
          const key = Buffer.from(bytes);
          expect(partitionForKey(key, partitions)).toBe(kafkajsPartition(key, partitions));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('should agree with the KafkaJS default partitioner when keys are random unicode strings', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 40 }),
        fc.integer({ min: 1, max: 64 }),
        (key, partitions) => {
          expect(partitionForKey(key, partitions)).toBe(kafkajsPartition(key, partitions));
          expect(partitionForKey(key, partitions)).toBe(partitionForKey(Buffer.from(key, 'utf8'), partitions));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('should agree with the KafkaJS default partitioner when keys look like account ids', () => {
    for (let i = 0; i < 5000; i++) {
      const key = `acc-${i}`;
      expect(partitionForKey(key, 12)).toBe(kafkajsPartition(key, 12));
    }
  });

  it('should throw when the partition count is not a positive integer', () => {
    expect(() => partitionForKey('k', 0)).toThrow(RangeError);
    expect(() => partitionForKey('k', -3)).toThrow(RangeError);
    expect(() => partitionForKey('k', 1.5)).toThrow(RangeError);
  });
});

describe('javaCompatiblePartitioner', () => {
  it('should pick the Java partition when the producer applies % partitions to its result', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 32 }),
        fc.integer({ min: 1, max: 100 }),
        (bytes, partitions) => {
          const key = Buffer.from(bytes);
          const raw = javaCompatiblePartitioner({ topic: 't' }, key, { metadata: undefined });
          expect(raw % partitions).toBe(kafkajsPartition(key, partitions));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('should differ from the library default partitioner for about half of the keys when partitions is 12', () => {
    let differ = 0;
    for (let i = 0; i < 2000; i++) {
      const key = Buffer.from(`acc-${i}`);
      const ours = javaCompatiblePartitioner({ topic: 't' }, key, { metadata: undefined }) % 12;
      const libraryDefault = defaultPartitioner({ topic: 't' }, key) % 12;
      if (ours !== libraryDefault) {
        differ++;
      }
    }
    expect(differ).toBeGreaterThan(600);
  });
});

describe('murmur2Int', () => {
  it('should equal the client library murmur2 for random keys of every length when computed with 32-bit integers', async () => {
    const { murmur2 } = await import('@platformatic/kafka');
    const { murmur2Int } = await import('../../../src/kafka/partitioner.ts');
    const { randomBytes } = await import('node:crypto');
    for (let i = 0; i < 5000; i++) {
      const key = randomBytes(i % 67);
      expect(murmur2Int(key)).toBe(murmur2(key) | 0);
    }
  });
});
