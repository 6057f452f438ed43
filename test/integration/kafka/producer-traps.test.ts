// Producer-side traps of @platformatic/kafka 2.12 and BankstreamProducer's fixes:
//   - AddPartitionsToTxn is sent as v5 (v4+ is the inter-broker form); we send v3.
//   - InitProducerId sends producer id/epoch 0/0: a restarted transactional.id is fenced forever.
//   - Concurrent sends in one transaction lose AddPartitionsToTxn requests -> partial commit.
//   - A transaction whose send failed can still be committed.
//   - A fenced zombie must not fence the new instance back when it re-initialises.
//   - Ending a transaction with no records and no offsets fails (INVALID_TXN_STATE).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionsApiChannel, findErrorBy } from '@platformatic/kafka';
import { createTransactionalProducer } from '../../../src/kafka/clients.ts';
import {
  isProducerFencedError,
  TransactionAbortableError,
  type BankstreamProducer,
} from '../../../src/kafka/producer.ts';
import {
  clientConfig,
  closeAll,
  fetchPartition,
  rawConsumer,
  rawTransactionalProducer,
  text,
  TopicFixture,
  uniqueName,
  waitForStableEnd,
} from './helpers.ts';

const TEST_TIMEOUT = 45_000;
const ADD_PARTITIONS_TO_TXN = 24;

function ours(transactionalId: string): BankstreamProducer {
  return createTransactionalProducer({ ...clientConfig(uniqueName('traps-producer')), transactionalId });
}

describe('transactional producer traps against a real broker', () => {
  const fixture = new TopicFixture();
  let topic: string;
  const sentVersions: number[] = [];
  const onStart = (message: unknown) => {
    const event = message as { apiKey?: number; apiVersion?: number };
    if (event.apiKey === ADD_PARTITIONS_TO_TXN && typeof event.apiVersion === 'number') {
      sentVersions.push(event.apiVersion);
    }
  };

  beforeAll(async () => {
    topic = await fixture.create('traps', 4);
    connectionsApiChannel.start.subscribe(onStart);
    // Make sure producer id 0 is taken, so the transactional ids below get a non-zero producer id.
    const warmup = ours(uniqueName('traps-warmup'));
    try {
      await (await warmup.beginTransaction()).abort();
    } finally {
      await closeAll(warmup);
    }
  }, TEST_TIMEOUT);

  afterAll(async () => {
    connectionsApiChannel.start.unsubscribe(onStart);
    await fixture.dispose();
  }, 60_000);

  async function committedValues(partition: number): Promise<string[]> {
    const consumer = rawConsumer();
    try {
      const end = await waitForStableEnd(consumer, topic, partition);
      return (await fetchPartition(consumer, topic, partition, 0n, end)).map((r) => r.value);
    } finally {
      await closeAll(consumer);
    }
  }

  describe('AddPartitionsToTxn', () => {
    it(
      'should be sent as v4+ (the broker-to-broker form) when the raw client adds a partition',
      async () => {
        sentVersions.length = 0;
        const producer = rawTransactionalProducer(uniqueName('traps-apt-raw'));
        try {
          const tx = await producer.beginTransaction();
          await tx.send({ messages: [{ topic, partition: 0, value: text('apt-raw') }] });
          await tx.commit();
        } finally {
          await closeAll(producer);
        }
        expect(sentVersions.length).toBeGreaterThan(0);
        expect(Math.min(...sentVersions)).toBeGreaterThanOrEqual(4);
      },
      TEST_TIMEOUT,
    );

    it(
      'should be sent as v3 when the transaction goes through BankstreamProducer',
      async () => {
        sentVersions.length = 0;
        const producer = ours(uniqueName('traps-apt-ours'));
        try {
          const tx = await producer.beginTransaction();
          await tx.send({ messages: [{ topic, partition: 1, value: text('apt-v3') }] });
          await tx.commit();
        } finally {
          await closeAll(producer);
        }
        expect(sentVersions).toEqual([3]);
        expect(await committedValues(1)).toContain('apt-v3');
      },
      TEST_TIMEOUT,
    );
  });

  describe('restarting a transactional.id', () => {
    it(
      'should be fenced forever when the raw client re-initialises a transactional.id whose producer id is not 0 (bug reproduced)',
      async () => {
        const transactionalId = uniqueName('traps-restart-raw');
        const first = rawTransactionalProducer(transactionalId);
        try {
          const tx = await first.beginTransaction();
          await tx.send({ messages: [{ topic, partition: 2, value: text('before-restart') }] });
          await tx.commit();
          expect(first.producerId).not.toBe(0n);
        } finally {
          await closeAll(first);
        }
        const restarted = rawTransactionalProducer(transactionalId);
        try {
          const error = await restarted.beginTransaction().catch((e: unknown) => e);
          expect(error).toBeInstanceOf(Error);
          expect(findErrorBy(error as Error, 'apiId', 'PRODUCER_FENCED')).not.toBeNull();
        } finally {
          await closeAll(restarted);
        }
        // BankstreamProducer starts with producer id/epoch -1/-1: same producer id, next epoch.
        const fixed = ours(transactionalId);
        try {
          const tx = await fixed.beginTransaction();
          await tx.send({ messages: [{ topic, partition: 2, value: text('after-restart') }] });
          await tx.commit();
        } finally {
          await closeAll(fixed);
        }
        expect(await committedValues(2)).toContain('after-restart');
      },
      TEST_TIMEOUT,
    );

    it(
      'should fence the zombie and never fence the new instance back when the zombie re-initialises',
      async () => {
        const transactionalId = uniqueName('traps-zombie');
        const zombie = ours(transactionalId);
        const successor = ours(transactionalId);
        try {
          await (await zombie.beginTransaction()).commit();
          const successorTx = await successor.beginTransaction(); // bumps the epoch: the zombie is fenced
          expect(successor.producerId).toBe(zombie.producerId);
          expect(successor.producerEpoch).toBeGreaterThan(zombie.producerEpoch!);

          const zombieTx = await zombie.beginTransaction();
          const sendError = await zombieTx
            .send({ messages: [{ topic, partition: 3, value: text('zombie') }] })
            .catch((e: unknown) => e);
          expect(isProducerFencedError(sendError)).toBe(true);
          await expect(zombieTx.commit()).rejects.toBeInstanceOf(TransactionAbortableError);
          // Re-initialising sends the zombie's last producer id/epoch, so the coordinator answers
          // PRODUCER_FENCED instead of bumping the epoch again (which would fence the successor).
          const initError = await zombie.initIdempotentProducer({}).catch((e: unknown) => e);
          expect(isProducerFencedError(initError)).toBe(true);

          await successorTx.send({ messages: [{ topic, partition: 3, value: text('successor') }] });
          await successorTx.commit();
        } finally {
          await closeAll(zombie, successor);
        }
        const values = await committedValues(3);
        expect(values).toContain('successor');
        expect(values).not.toContain('zombie');
      },
      TEST_TIMEOUT,
    );
  });

  describe('concurrent sends in one transaction', () => {
    it(
      'should lose partitions and still commit the rest when the raw client sends concurrently (bug reproduced)',
      async () => {
        const producer = rawTransactionalProducer(uniqueName('traps-concurrent-raw'));
        const marker = uniqueName('raw-concurrent');
        try {
          const tx = await producer.beginTransaction();
          const results = await Promise.allSettled(
            [0, 1, 2, 3].map((partition) =>
              tx.send({ messages: [{ topic, partition, value: text(`${marker}-${partition}`) }] }),
            ),
          );
          const failed = results.filter((r) => r.status === 'rejected');
          expect(failed.length).toBeGreaterThan(0);
          expect(
            findErrorBy((failed[0] as PromiseRejectedResult).reason as Error, 'apiId', 'TRANSACTION_ABORTABLE'),
          ).not.toBeNull();
          await tx.commit(); // the client lets this through: a partial transaction is committed
        } finally {
          await closeAll(producer);
        }
        const visible = (await Promise.all([0, 1, 2, 3].map(committedValues)))
          .flat()
          .filter((v) => v.startsWith(marker));
        expect(visible.length).toBeGreaterThan(0);
        expect(visible.length).toBeLessThan(4);
      },
      TEST_TIMEOUT,
    );

    it(
      'should add every partition and commit all records when BankstreamProducer sends concurrently',
      async () => {
        const producer = ours(uniqueName('traps-concurrent-ours'));
        const marker = uniqueName('ours-concurrent');
        try {
          const tx = await producer.beginTransaction();
          await Promise.all(
            [0, 1, 2, 3].map((partition) =>
              tx.send({ messages: [{ topic, partition, value: text(`${marker}-${partition}`) }] }),
            ),
          );
          await tx.commit();
        } finally {
          await closeAll(producer);
        }
        const visible = (await Promise.all([0, 1, 2, 3].map(committedValues)))
          .flat()
          .filter((v) => v.startsWith(marker));
        expect(visible.sort()).toEqual([0, 1, 2, 3].map((p) => `${marker}-${p}`));
      },
      TEST_TIMEOUT,
    );
  });

  describe('empty transactions', () => {
    it(
      'should fail with INVALID_TXN_STATE when the raw client ends a transaction with no records and no offsets (bug reproduced)',
      async () => {
        const producer = rawTransactionalProducer(uniqueName('traps-empty-raw'));
        try {
          const error = await (await producer.beginTransaction()).commit().catch((e: unknown) => e);
          expect(findErrorBy(error as Error, 'apiId', 'INVALID_TXN_STATE')).not.toBeNull();
        } finally {
          await closeAll(producer);
        }
      },
      TEST_TIMEOUT,
    );

    it(
      'should complete empty transactions locally and keep working when BankstreamProducer commits or aborts them',
      async () => {
        const producer = ours(uniqueName('traps-empty-ours'));
        const marker = uniqueName('empty');
        try {
          await (await producer.beginTransaction()).commit();
          await (await producer.beginTransaction()).abort();
          const tx = await producer.beginTransaction();
          await tx.send({ messages: [{ topic, partition: 1, value: text(marker) }] });
          await tx.commit();
        } finally {
          await closeAll(producer);
        }
        expect(await committedValues(1)).toContain(marker);
      },
      TEST_TIMEOUT,
    );
  });

  describe('commit after a failed send', () => {
    it(
      'should refuse to commit and allow abort and a next transaction when a send in the transaction failed',
      async () => {
        const producer = ours(uniqueName('traps-failed-send'));
        const marker = uniqueName('failed-send');
        try {
          const tx = await producer.beginTransaction();
          await tx.send({ messages: [{ topic, partition: 0, value: text(`${marker}-partial`) }] });
          const error = await tx
            .send({ messages: [{ topic: uniqueName('missing-topic'), partition: 0, value: text('x') }] })
            .catch((e: unknown) => e);
          expect(error).toBeInstanceOf(Error);
          await expect(tx.commit()).rejects.toBeInstanceOf(TransactionAbortableError);
          await tx.abort();

          const next = await producer.beginTransaction();
          await next.send({ messages: [{ topic, partition: 0, value: text(`${marker}-next`) }] });
          await next.commit();
        } finally {
          await closeAll(producer);
        }
        const values = (await committedValues(0)).filter((v) => v.startsWith(marker));
        expect(values).toEqual([`${marker}-next`]);
      },
      TEST_TIMEOUT,
    );
  });
});
