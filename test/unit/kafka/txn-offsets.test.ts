import { describe, expect, it } from 'vitest';
import { consumerGroupMetadata } from '../../../src/kafka/txn-offsets.ts';
import { nextOffsetsOf } from '../../fixtures/next-offsets.ts';
import { createReadCommittedConsumer } from '../../../src/kafka/clients.ts';

describe('nextOffsetsOf', () => {
  it('should return the highest offset + 1 per topic-partition with that record leader epoch when messages repeat partitions', () => {
    const offsets = nextOffsetsOf([
      { topic: 'a', partition: 0, offset: 5n, leaderEpoch: 1 },
      { topic: 'a', partition: 0, offset: 7n, leaderEpoch: 2 },
      { topic: 'a', partition: 1, offset: 0n, leaderEpoch: 2 },
      { topic: 'b', partition: 0, offset: 3n, leaderEpoch: 0 },
      { topic: 'a', partition: 0, offset: 6n, leaderEpoch: 2 },
    ]);
    expect(offsets).toEqual([
      { topic: 'a', partition: 0, offset: 8n, leaderEpoch: 2 },
      { topic: 'a', partition: 1, offset: 1n, leaderEpoch: 2 },
      { topic: 'b', partition: 0, offset: 4n, leaderEpoch: 0 },
    ]);
  });

  it('should return nothing when there are no messages', () => {
    expect(nextOffsetsOf([])).toEqual([]);
  });
});

describe('consumerGroupMetadata', () => {
  it('should throw when the consumer has not joined its group', async () => {
    const consumer = createReadCommittedConsumer({ bootstrapBrokers: ['127.0.0.1:1'], clientId: 'unit', groupId: 'g' });
    try {
      expect(() => consumerGroupMetadata(consumer)).toThrow(/not joined/);
    } finally {
      await consumer.close();
    }
  });
});
