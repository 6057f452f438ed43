// The client's own read_committed filter DROPS COMMITTED records in this layout (one producer, one
// partition): an aborted transaction with data, committed transactions, then an abort marker of a
// transaction that had the partition added but wrote nothing there (here: its only record was refused
// as too large). The broker lists only the first aborted transaction; the client's filter drops every
// batch of that producer from it up to the producer's LAST abort marker in the response. That is how
// engine outputs (and, in the bank, credit legs) went missing for readers. src/kafka/fetcher.ts sends
// Fetch through the protocol API and filters with the Java rule only.
import { Consumer } from '@platformatic/kafka';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTransactionalProducer } from '../../../src/kafka/clients.ts';
import { Fetcher } from '../../../src/kafka/fetcher.ts';
import {
  BOOTSTRAP,
  clientConfig,
  closeAll,
  fetchPartition,
  rawConsumer,
  text,
  TopicFixture,
  uniqueName,
  waitForStableEnd,
  withTimeout,
} from './helpers.ts';

const TEST_TIMEOUT = 45_000;
const committed = ['c1', 'c2', 'c3', 'c4', 'c5'];

describe('an abort marker without data after committed transactions of the same producer', () => {
  const fixture = new TopicFixture();
  let topic: string;
  let lso: bigint;

  beforeAll(async () => {
    await withTimeout(fixture.admin.listTopics(), 10_000, 'broker reachable');
    topic = await fixture.create('rc-empty-abort', 1);
    const producer = createTransactionalProducer({
      ...clientConfig(uniqueName('rc-empty-abort-producer')),
      transactionalId: uniqueName('rc-empty-abort-tx'),
    });
    try {
      const aborted = await producer.beginTransaction();
      await aborted.send({ messages: [{ topic, partition: 0, key: text('k'), value: text('aborted') }] });
      await aborted.abort();
      for (const value of committed) {
        const tx = await producer.beginTransaction();
        await tx.send({ messages: [{ topic, partition: 0, key: text('k'), value: text(value) }] });
        await tx.commit();
      }
      // The partition joins the transaction, the broker refuses the only record (above max.message.bytes),
      // the transaction aborts: an abort marker with no data of that transaction in the partition.
      const empty = await producer.beginTransaction();
      await expect(
        empty.send({ messages: [{ topic, partition: 0, key: text('k'), value: Buffer.alloc(2 * 1024 * 1024) }] }),
      ).rejects.toThrow();
      await empty.abort();
    } finally {
      await closeAll(producer);
    }
    const probe = rawConsumer();
    try {
      lso = await waitForStableEnd(probe, topic, 0);
    } finally {
      await closeAll(probe);
    }
  }, TEST_TIMEOUT);

  afterAll(async () => {
    await fixture.dispose();
  }, 60_000);

  it(
    "should lose the committed records when read through the client's fetch (bug reproduced)",
    async () => {
      const consumer = rawConsumer();
      try {
        const records = await fetchPartition(consumer, topic, 0, 0n, lso);
        expect(records.map((r) => r.value)).toEqual([]);
      } finally {
        await closeAll(consumer);
      }
    },
    TEST_TIMEOUT,
  );

  it(
    "should deliver exactly the committed records through the engine's Fetcher",
    async () => {
      const consumer = new Consumer({
        bootstrapBrokers: BOOTSTRAP,
        clientId: uniqueName('rc-fetcher'),
        groupId: uniqueName('rc-fetcher-group'),
        strict: false,
      });
      try {
        const fetcher = new Fetcher(consumer, {
          maxWaitMs: 100,
          minBytes: 1,
          maxBytes: 1_048_576,
          partitionMaxBytes: 1_048_576,
        });
        const values: string[] = [];
        let offset = 0n;
        while (offset < lso) {
          const [part] = await fetcher.fetch([{ topic, partition: 0, offset }]);
          values.push(...part!.records.map((r) => r.value!.toString('utf8')));
          offset = part!.nextOffset;
        }
        expect(values).toEqual(committed);
      } finally {
        await closeAll(consumer);
      }
    },
    TEST_TIMEOUT,
  );
});
