// runLoad on the real broker: what it reports is what is on the topic, every key on the partition the
// Java/KafkaJS partitioner gives it, commands in the documented wire format, and the run bounds itself.
import { afterAll, describe, expect, it } from 'vitest';
import { positiveMurmur2 } from '../../../src/kafka/partitioner.ts';
import { runLoad } from '../../../src/load/index.ts';
import { LoadProducer } from '../../../src/load/producer.ts';
import type { LoadMessage } from '../../../src/load/workload.ts';
import { BROKERS, createTopics, deleteTopics, readCommitted, uniqueName } from '../../helpers/kafka.ts';

const PARTITIONS = 6;
const topics: string[] = [];

async function freshTopic(): Promise<string> {
  const topic = uniqueName('load-test');
  await createTopics([{ name: topic, partitions: PARTITIONS }]);
  topics.push(topic);
  return topic;
}

describe('runLoad', () => {
  afterAll(async () => {
    await deleteTopics(topics);
  });

  it('should produce the requested valid and invalid commands on their murmur2 partitions when bounded by a count', async () => {
    const topic = await freshTopic();
    const result = await runLoad({
      brokers: BROKERS,
      topic,
      accounts: 40,
      count: 3000,
      invalidRatio: 0.2,
      seed: 42,
      recordIds: true,
      setupSettleMs: 0,
    });

    expect(result.setup).toMatchObject({ accounts: 40, deposits: 40 });
    expect(result.sent).toBe(3000);
    expect(result.errors, result.firstError).toBe(0);
    expect(result.valid + result.invalid).toBe(3000);
    // 20% of 3000, give or take five standard deviations of the binomial (about 22 each).
    expect(result.invalid).toBeGreaterThan(490);
    expect(result.invalid).toBeLessThan(710);
    expect(result.expected.transfers).toBe(result.valid);
    const failedExpected = Object.values(result.expected.failed).reduce((a, b) => a + b, 0);
    expect(failedExpected + result.expected.dlq).toBe(result.invalid);

    const records = await readCommitted(topic, PARTITIONS);
    expect(records).toHaveLength(3080);
    for (const record of records) {
      const key = record.key!.toString('utf8');
      expect(positiveMurmur2(key) % PARTITIONS, `partition of key ${key}`).toBe(record.partition);
    }
    const ids = result.ids!;
    expect(ids).toHaveLength(3080);
    const byId = new Map(ids.map((sent) => [sent.id, sent]));
    let parsedValid = 0;
    let deadLetters = 0;
    for (const record of records) {
      const text = record.value!.toString('utf8');
      let command: Record<string, unknown> | undefined;
      try {
        command = JSON.parse(text) as Record<string, unknown>;
      } catch {
        deadLetters++;
        continue;
      }
      const id = (command['transferId'] ?? command['accountId']) as string;
      const sent = byId.get(id);
      expect(sent, `record ${id} was reported`).toBeDefined();
      expect(sent!.key).toBe(record.key!.toString('utf8'));
      if (command['type'] === 'teleport') deadLetters++;
      if (sent!.kind === 'transfer') {
        parsedValid++;
        expect(command).toMatchObject({ type: 'transfer', from: sent!.key, currency: 'EUR' });
        expect(command['amount']).toMatch(/^[0-9]+\.[0-9]{2}$/);
        expect(command['to']).not.toBe(command['from']);
      }
    }
    expect(parsedValid).toBe(result.valid);
    expect(deadLetters).toBe(result.expected.dlq);
  });

  it('should open each account before funding it in the same partition when setup runs', async () => {
    const topic = await freshTopic();
    await runLoad({ brokers: BROKERS, topic, accounts: 30, count: 0, seed: 3, setupSettleMs: 0 });
    const records = (await readCommitted(topic, PARTITIONS)).map((r) => ({
      partition: r.partition,
      offset: r.offset,
      command: JSON.parse(r.value!.toString('utf8')) as Record<string, string>,
    }));
    expect(records).toHaveLength(60);
    for (const deposit of records.filter((r) => r.command['type'] === 'deposit')) {
      const open = records.find(
        (r) => r.command['type'] === 'open_account' && r.command['accountId'] === deposit.command['accountId'],
      );
      expect(open?.partition).toBe(deposit.partition);
      expect(open!.offset < deposit.offset).toBe(true);
    }
  });

  it('should stop by itself at the rate asked when bounded by a duration', async () => {
    const topic = await freshTopic();
    const started = Date.now();
    const result = await runLoad({
      brokers: BROKERS,
      topic,
      accounts: 10,
      setup: false,
      durationMs: 2000,
      ratePerSecond: 400,
      seed: 5,
    });
    const elapsedMs = Date.now() - started;
    expect(result.aborted).toBe(false);
    expect(result.errors, result.firstError).toBe(0);
    expect(elapsedMs).toBeLessThan(15_000);
    // The schedule is rate × elapsed: about 800 in 2 s, never ahead of it.
    expect(result.sent).toBeLessThanOrEqual(801);
    expect(result.sent).toBeGreaterThan(600);
    expect((await readCommitted(topic, PARTITIONS)).length).toBe(result.sent);
  });
});

describe('LoadProducer', () => {
  it('should write every acknowledged record once when many sends to one partition are in flight at once', async () => {
    const topic = uniqueName('load-race');
    await createTopics([{ name: topic, partitions: 1 }]);
    topics.push(topic);
    const producer = await LoadProducer.connect({
      brokers: BROKERS,
      topic,
      clientId: uniqueName('load-race'),
      inflightBatchesMax: 16,
    });
    try {
      const message = (i: number): LoadMessage => ({
        key: `k-${i}`,
        value: `{"n":${i}}`,
        kind: 'transfer',
        id: `t-${i}`,
        expect: { topic: 'completed' },
      });
      for (let i = 0; i < 400; i += 4) {
        await producer.slot();
        producer.send([message(i), message(i + 1), message(i + 2), message(i + 3)], () => {});
      }
      await producer.drain(60_000);
    } finally {
      await producer.close();
    }
    expect(producer.errors, producer.firstError).toBe(0);
    expect(producer.acked).toBe(400);
    const values = (await readCommitted(topic, 1)).map((r) => r.value!.toString('utf8'));
    // Nothing acknowledged and missing (KafkaJS takes DUPLICATE_SEQUENCE_NUMBER as success), nothing twice, in order.
    expect(values).toEqual(Array.from({ length: 400 }, (_, i) => `{"n":${i}}`));
  });
});
