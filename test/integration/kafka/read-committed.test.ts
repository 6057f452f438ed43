// Trap 1: @platformatic/kafka's read_committed filter (#filterUncommittedMessages) against a real
// broker, and the fix (ReadCommittedConsumer). Each raw-client expectation documents the bug as it
// reproduces with @platformatic/kafka 2.12.1; if the library is fixed these assertions will fail and
// should be flipped.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReadCommittedConsumer, createTransactionalProducer } from '../../../src/kafka/clients.ts';
import type { BankstreamProducer } from '../../../src/kafka/producer.ts';
import type { FetchResponse } from '../../../src/kafka/read-committed.ts';
import {
  clientConfig,
  groupName,
  closeAll,
  collect,
  fetchPartition,
  highWatermark,
  lastStableOffset,
  rawConsumer,
  text,
  TopicFixture,
  uniqueName,
  waitForStableEnd,
  withTimeout,
} from './helpers.ts';

const TEST_TIMEOUT = 45_000;

function producer(transactionalId: string): BankstreamProducer {
  return createTransactionalProducer({ ...clientConfig(uniqueName('rc-producer')), transactionalId });
}

function ourConsumer(groupId = groupName('rc-group')) {
  return createReadCommittedConsumer({ ...clientConfig(uniqueName('rc-consumer')), groupId, maxWaitTimeMs: 200 });
}

async function transaction(
  p: BankstreamProducer,
  topic: string,
  values: string[],
  outcome: 'commit' | 'abort',
  separateBatches = false,
) {
  const tx = await p.beginTransaction();
  if (separateBatches) {
    for (const value of values) {
      await tx.send({ messages: [{ topic, partition: 0, key: text('k'), value: text(value) }] });
    }
  } else {
    await tx.send({ messages: values.map((value) => ({ topic, partition: 0, key: text('k'), value: text(value) })) });
  }
  if (outcome === 'commit') {
    await tx.commit();
  } else {
    await tx.abort();
  }
}

const values = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe('read_committed filtering against a real broker', () => {
  const fixture = new TopicFixture();

  beforeAll(async () => {
    await withTimeout(fixture.admin.listTopics(), 10_000, 'broker reachable');
  });

  afterAll(async () => {
    await fixture.dispose();
  }, 60_000);

  describe('when one transactional.id aborts twice (with a commit in between) inside one fetch response', () => {
    let topic: string;
    let lso: bigint;
    const aborted1 = values('aborted1', 3);
    const committed2 = values('committed2', 3);
    const aborted3 = values('aborted3', 3);
    const committed4 = values('committed4', 2);

    beforeAll(async () => {
      topic = await fixture.create('rc-double-abort', 1);
      const p = producer(uniqueName('rc-double-abort-tx'));
      try {
        await transaction(p, topic, aborted1, 'abort');
        await transaction(p, topic, committed2, 'commit');
        await transaction(p, topic, aborted3, 'abort');
        await transaction(p, topic, committed4, 'commit');
      } finally {
        await closeAll(p);
      }
      const probe = ourConsumer();
      try {
        lso = await waitForStableEnd(probe, topic, 0);
      } finally {
        await closeAll(probe);
      }
    }, TEST_TIMEOUT);

    it(
      'should deliver the records of the earlier aborted transaction when read through the raw client (bug reproduced)',
      async () => {
        const consumer = rawConsumer();
        try {
          let responses = 0;
          const records = await fetchPartition(consumer, topic, 0, 0n, lso, 1_048_576, () => responses++);
          expect(responses).toBe(1); // everything came in ONE response
          // Only the LAST aborted transaction of the producer is dropped; aborted1 leaks.
          expect(records.map((r) => r.value)).toEqual([...aborted1, ...committed2, ...committed4]);
        } finally {
          await closeAll(consumer);
        }
      },
      TEST_TIMEOUT,
    );

    it(
      'should deliver exactly the committed records when read through ReadCommittedConsumer.fetch',
      async () => {
        const consumer = ourConsumer();
        try {
          const records = await fetchPartition(consumer, topic, 0, 0n, lso);
          expect(records.map((r) => r.value)).toEqual([...committed2, ...committed4]);
          expect(consumer.abortedRecordsFiltered).toBe(aborted1.length);
        } finally {
          await closeAll(consumer);
        }
      },
      TEST_TIMEOUT,
    );

    it(
      'should deliver exactly the committed records in order when consumed as a group stream through ReadCommittedConsumer',
      async () => {
        const consumer = ourConsumer();
        try {
          const stream = await consumer.consume({ topics: [topic], mode: 'earliest' });
          try {
            const got = await collect(
              stream,
              (m) => m.value.toString(),
              (items) => items.length >= committed2.length + committed4.length,
              20_000,
              1_000,
            );
            expect(got).toEqual([...committed2, ...committed4]);
          } finally {
            await withTimeout(stream.close(), 10_000, 'close stream');
          }
        } finally {
          await closeAll(consumer);
        }
      },
      TEST_TIMEOUT,
    );

    it(
      'should leak the earlier aborted records when a raw group stream reads them (bug reproduced)',
      async () => {
        const consumer = rawConsumer();
        try {
          const stream = await consumer.consume({ topics: [topic], mode: 'earliest' });
          try {
            const expected = aborted1.length + committed2.length + committed4.length;
            const got = await collect(
              stream,
              (m) => m.value.toString(),
              (items) => items.length >= expected,
              20_000,
              1_000,
            );
            expect(got).toEqual([...aborted1, ...committed2, ...committed4]);
          } finally {
            await withTimeout(stream.close(), 10_000, 'close stream');
          }
        } finally {
          await closeAll(consumer);
        }
      },
      TEST_TIMEOUT,
    );
  });

  describe('when an aborted transaction has its abort marker above the LSO (another producer still open)', () => {
    it(
      'should deliver it through the raw client (bug reproduced) and hide it through ReadCommittedConsumer when the marker lies above the LSO',
      async () => {
        const topic = await fixture.create('rc-open-range', 1);
        const a = producer(uniqueName('rc-open-a'));
        const b = producer(uniqueName('rc-open-b'));
        const raw = rawConsumer();
        const ours = ourConsumer();
        try {
          // A writes 0..2, B opens a transaction at 3, A aborts (marker at 4). B stays open: LSO = 3.
          const txA = await a.beginTransaction();
          await txA.send({ messages: values('a-aborted', 3).map((v) => ({ topic, partition: 0, value: text(v) })) });
          const txB = await b.beginTransaction();
          await txB.send({ messages: [{ topic, partition: 0, value: text('b-committed-0') }] });
          await txA.abort();

          // Wait for A's abort marker (offset 4) to be written: then the high watermark is 5.
          const deadline = Date.now() + 10_000;
          while ((await highWatermark(ours, topic, 0)) < 5n && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          expect(await highWatermark(ours, topic, 0)).toBe(5n);
          const lso = await lastStableOffset(ours, topic, 0);
          expect(lso).toBe(3n);

          // The broker lists A's aborted transaction although its marker (offset 4) is not returned:
          // "every listed aborted transaction has its marker at or before the LSO" does not hold.
          const seen: FetchResponse[] = [];
          const rawRecords = await fetchPartition(raw, topic, 0, 0n, lso, 1_048_576, (r) => seen.push(r));
          const partition = seen[0]!.responses[0]!.partitions[0]!;
          expect(partition.lastStableOffset).toBe(3n);
          expect(partition.abortedTransactions).toEqual([{ producerId: a.producerId, firstOffset: 0n }]);
          expect(partition.records!.some((batch) => (batch.attributes & 0x20) !== 0)).toBe(false);
          // Raw client: "open range ... ignore for safety" delivers A's aborted records.
          expect(rawRecords.map((r) => r.value)).toEqual(values('a-aborted', 3));

          const ourRecords = await fetchPartition(ours, topic, 0, 0n, lso);
          expect(ourRecords).toEqual([]);

          await txB.commit();
          const lsoAfter = await waitForStableEnd(ours, topic, 0);
          const rest = await fetchPartition(ours, topic, 0, lso, lsoAfter);
          expect(rest.map((r) => r.value)).toEqual(['b-committed-0']);
        } finally {
          await closeAll(raw, ours, a, b);
        }
      },
      TEST_TIMEOUT,
    );
  });

  describe('when maxBytes cuts a response before the abort marker', () => {
    let topic: string;
    let lso: bigint;
    let producerId: bigint;
    const aborted = values('aborted', 5);
    const committed = values('committed', 2);

    beforeAll(async () => {
      topic = await fixture.create('rc-truncated', 1);
      const p = producer(uniqueName('rc-truncated-tx'));
      try {
        await transaction(p, topic, aborted, 'abort', true); // one batch per record: offsets 0..4, marker 5
        await transaction(p, topic, committed, 'commit', true);
        producerId = p.producerId!;
      } finally {
        await closeAll(p);
      }
      const probe = ourConsumer();
      try {
        lso = await waitForStableEnd(probe, topic, 0);
      } finally {
        await closeAll(probe);
      }
    }, TEST_TIMEOUT);

    it(
      'should list an aborted transaction again, with its original first offset, when a fetch starts in its middle',
      async () => {
        const consumer = ourConsumer();
        try {
          const listed: Array<{ fetchOffset: bigint; aborted: unknown }> = [];
          await fetchPartition(consumer, topic, 0, 0n, lso, 1, (response, fetchOffset) => {
            listed.push({ fetchOffset, aborted: response.responses[0]!.partitions[0]!.abortedTransactions });
          });
          // partitionMaxBytes = 1: the broker returns exactly one batch per response (KIP-74).
          for (const { fetchOffset, aborted: list } of listed.filter((l) => l.fetchOffset <= 5n)) {
            expect(list, `fetch at ${fetchOffset}`).toEqual([{ producerId, firstOffset: 0n }]);
          }
        } finally {
          await closeAll(consumer);
        }
      },
      TEST_TIMEOUT,
    );

    it(
      'should deliver the aborted records through the raw client (bug reproduced) and not through ReadCommittedConsumer when each response holds one batch',
      async () => {
        const raw = rawConsumer();
        const ours = ourConsumer();
        try {
          const rawRecords = await fetchPartition(raw, topic, 0, 0n, lso, 1);
          expect(rawRecords.map((r) => r.value)).toEqual([...aborted, ...committed]);
          const ourRecords = await fetchPartition(ours, topic, 0, 0n, lso, 1);
          expect(ourRecords.map((r) => r.value)).toEqual(committed);
        } finally {
          await closeAll(raw, ours);
        }
      },
      TEST_TIMEOUT,
    );

    it(
      'should advance a stream past trailing aborted batches and deliver only committed records when responses are one batch each',
      async () => {
        const consumer = createReadCommittedConsumer({
          ...clientConfig(uniqueName('rc-consumer')),
          groupId: groupName('rc-group'),
          maxWaitTimeMs: 100,
          maxBytesPerPartition: 1,
        });
        try {
          const stream = await consumer.consume({ topics: [topic], mode: 'earliest' });
          try {
            const got = await collect(
              stream,
              (m) => m.value.toString(),
              (items) => items.length >= committed.length,
              20_000,
              1_000,
            );
            expect(got).toEqual(committed);
          } finally {
            await withTimeout(stream.close(), 10_000, 'close stream');
          }
        } finally {
          await closeAll(consumer);
        }
      },
      TEST_TIMEOUT,
    );
  });
});
