// Poison records on the real broker (issue 14): one record of each class, followed by valid commands on the
// same partition. The instance stays up, every valid command is answered, the poison records are in the DLQ
// (or answered malformed, when they carry a usable transferId), and what was answered is storable.
// 1. The bank: a lone surrogate in a transferId, an account id with a lone surrogate, NUL in a reference,
//    a key that is not UTF-8, a value near 1 MiB — none of them throws any more (the edge refuses them),
//    and the largest one's dead letter still fits the DLQ.
// 2. The engine: a processor that throws on one record in the middle of a batch: the record goes to the
//    dead-letter topic in the same transaction as its offset, its partial store write is gone (the counts
//    the next records see go on from the last good one), and the records after it are processed.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startInstance } from '../../../src/app/instance.ts';
import { clusterKeysFromSecret } from '../../../src/config/cluster-key.ts';
import { createLogger } from '../../../src/config/logger.ts';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { KafkaStreams } from '../../../src/runtime/kafka-streams.ts';
import { parseRecord } from '../../../src/sinks/records.ts';
import { jsonSerde, stringSerde } from '../../../src/stores/serdes.ts';
import { DLQ_HEADERS, type ProcessingErrorInfo } from '../../../src/topology/processing-errors.ts';
import { record } from '../../../src/topology/record.ts';
import { Topology } from '../../../src/topology/topology.ts';
import type { KeyValueStore, Processor, ProcessorContext, Rec } from '../../../src/topology/types.ts';
import {
  BROKERS,
  createTopics,
  deleteTopics,
  produce,
  readCommitted,
  uniqueName,
  waitFor,
} from '../../helpers/kafka.ts';
import { deleteTopicsWithPrefix, TEST_CLUSTER_SECRET } from '../support/kafka.ts';
import { PARTITIONS, setupPipeline } from './pipeline.ts';

const prefixes: string[] = [];
const topicsMade: string[] = [];
const dirs: string[] = [];

async function stateDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-poison-'));
  dirs.push(dir);
  return dir;
}

const text = (b: Buffer | null | undefined) => b?.toString('utf8') ?? '';
const headersOf = (headers: Record<string, Buffer> | Map<Buffer, Buffer> | undefined) =>
  Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k, text(v)]));

afterAll(async () => {
  for (const prefix of prefixes) await deleteTopicsWithPrefix(prefix);
  await deleteTopics(topicsMade);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('poison records on the real broker', () => {
  it('should answer every valid command after one poison record of each class on the same partition and keep the instance up', async () => {
    const { prefix, config } = await setupPipeline('poison', await stateDir());
    prefixes.push(prefix);
    const instance = await startInstance({ config, logger: createLogger('warn'), sink: false });
    try {
      const account = 'acc-poison';
      const partition = partitionForKey(Buffer.from(account), PARTITIONS);
      const on = (key: Buffer | string | null, value: string | Buffer) => ({
        topic: config.topics.input,
        partition,
        ...(key === null ? {} : { key: Buffer.isBuffer(key) ? key : Buffer.from(key, 'utf8') }),
        value: Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8'),
      });
      const deposit = (transferId: string) =>
        JSON.stringify({ type: 'deposit', transferId, accountId: account, amount: '1.00', currency: 'EUR' });
      const valid = Array.from({ length: 20 }, (_, i) => on(account, deposit(`ok-${i}`)));
      // JSON text, so that the escapes reach the parser as written: "\ud800" is a lone surrogate, "\u0000" NUL.
      const poison = [
        on(
          account,
          `{"type":"deposit","transferId":"t-\\ud800","accountId":"${account}","amount":"1.00","currency":"EUR"}`,
        ),
        on(account, `{"type":"open_account","accountId":"acc-\\udfff","ownerId":"u","currency":"EUR"}`),
        on(
          account,
          `{"type":"transfer","transferId":"p-nul","from":"${account}","to":"acc-other","amount":"1.00","currency":"EUR","reference":"rent\\u0000"}`,
        ),
        on(Buffer.from([0x61, 0xff]), deposit('p-key')),
        // At the broker's default limit (message.max.bytes 1,048,588 bytes per batch): its dead letter, headers
        // added, would not fit a DLQ with the same limit, and the commit would fail on every retry.
        on(account, `{"type":"deposit","pad":"${'x'.repeat(1_048_400)}"}`),
      ];
      await produce([
        on(account, JSON.stringify({ type: 'open_account', accountId: account, ownerId: 'u', currency: 'EUR' })),
        on(account, deposit('ok-first')),
        ...poison.slice(0, 4),
      ]);
      // Alone: a batch holding it and anything else would exceed the limit.
      await produce([poison[4]!]);
      await produce(valid);
      const read = (topic: string) => readCommitted(topic, PARTITIONS, config.kafkaBrokers);
      const completed = await waitFor(
        '21 completed deposits',
        async () => {
          const records = await read(config.topics.completed);
          return records.length >= 21 ? records : undefined;
        },
        120_000,
        500,
      );
      expect(completed.map((r) => JSON.parse(text(r.value)).transferId).sort()).toEqual(
        ['ok-first', ...valid.map((_, i) => `ok-${i}`)].sort(),
      );
      // p-key's key does not hash to this partition, so it is re-routed and answered from another task,
      // possibly after the deposits here have completed: wait for both refusals.
      const failed = await waitFor(
        '2 failed outcomes',
        async () => {
          const records = await read(config.topics.failed);
          return records.length >= 2 ? records : undefined;
        },
        60_000,
        500,
      );
      expect(failed.map((r) => [JSON.parse(text(r.value)).transferId, JSON.parse(text(r.value)).code]).sort()).toEqual([
        ['p-key', 'malformed'],
        ['p-nul', 'malformed'],
      ]);
      // What was answered, the Postgres sink's row builder accepts (no NUL, no lone surrogate reached it).
      for (const r of [...completed, ...failed]) {
        const row = parseRecord(config.topics, {
          topic: r.topic,
          partition: r.partition,
          offset: r.offset,
          key: r.key,
          value: r.value,
        });
        expect(row.kind, text(r.value)).toBe('outcome');
      }
      const dlq = await read(config.topics.dlq);
      expect(dlq.map((r) => text(r.value)).sort()).toEqual(
        [text(poison[0]!.value), text(poison[1]!.value), text(poison[4]!.value)].sort(),
      );
      for (const d of dlq) {
        const headers = headersOf(d.headers);
        expect(headers[DLQ_HEADERS.error]).toMatch(/has no usable (transferId|accountId)/);
        expect(headers).toMatchObject({
          [DLQ_HEADERS.sourceTopic]: config.topics.input,
          [DLQ_HEADERS.sourcePartition]: String(partition),
        });
      }
      expect(instance.streams.state).toBe('RUNNING');
      const balance = await instance.streams.task(partition)!.stores.get('balances')!.readCommitted(account);
      expect(balance).toEqual({ balance: '2100', inFlight: '0' });
    } finally {
      await instance.close();
    }
  });

  it('should dead-letter a record whose processor throws, drop its store write and process the rest of its batch when the engine runs on the broker', async () => {
    const appId = uniqueName('poison-engine');
    const topics = {
      input: `${appId}-in`,
      output: `${appId}-out`,
      dlq: `${appId}-dlq`,
      changelog: `${appId}-counts-changelog`,
    };
    await createTopics([
      { name: topics.input, partitions: 2 },
      { name: topics.output, partitions: 2 },
      { name: topics.dlq, partitions: 2 },
      { name: topics.changelog, partitions: 2, compact: true },
    ]);
    topicsMade.push(...Object.values(topics));

    /** Counts per key; writes the new count, forwards it, then throws on "boom" (after its write and forward). */
    class Boom implements Processor<string, string, string, string> {
      #context!: ProcessorContext<string, string>;
      #store!: KeyValueStore<number>;
      init(context: ProcessorContext<string, string>): void {
        this.#context = context;
        this.#store = context.getStore<number>('counts');
      }
      prefetch(rec: Rec<string, string>, keys: { add(store: string, key: string): void }): void {
        keys.add('counts', rec.key);
      }
      process(rec: Rec<string, string>): void {
        const count = (this.#store.get(rec.key) ?? 0) + 1;
        this.#store.put(rec.key, count);
        this.#context.forward(record(rec.key, `${rec.value}=${count}`, rec.timestamp));
        if (rec.value === 'boom') throw new Error('boom: a bug in the processor');
      }
    }
    const topology = new Topology()
      .addSource('in', { topics: [topics.input], valueSerde: stringSerde })
      .addProcessor('boom', () => new Boom(), 'in')
      .addStateStore({ name: 'counts', valueSerde: jsonSerde<number>() }, 'boom')
      .addSink('out', { topic: topics.output, valueSerde: stringSerde }, 'boom')
      .setProcessingExceptionHandler({ response: 'dead-letter', topic: topics.dlq });
    const errors: ProcessingErrorInfo[] = [];
    const rounds: number[] = [];
    const streams = new KafkaStreams(topology, {
      clusterKeys: clusterKeysFromSecret(TEST_CLUSTER_SECRET),
      applicationId: appId,
      instanceId: 'i0',
      brokers: BROKERS,
      stateDir: await stateDir(),
      commitIntervalMs: 100,
      batchRecordsMax: 5000,
      logger: createLogger('warn'),
      onProcessingError: (info) => errors.push(info),
      onFetchRound: (info) => rounds.push(info.records),
    });
    await streams.start();
    try {
      const partition = partitionForKey(Buffer.from('k'), 2);
      const values = ['a0', 'a1', 'boom', ...Array.from({ length: 20 }, (_, i) => `b${i}`)];
      // One produce: the poison record sits in the middle of one fetched batch.
      await produce(
        values.map((v) => ({
          topic: topics.input,
          partition,
          key: Buffer.from('k'),
          value: Buffer.from(v),
          headers: new Map([[Buffer.from('trace'), Buffer.from(v)]]),
        })),
      );
      const output = await waitFor(
        '22 outputs',
        async () => {
          const records = await readCommitted(topics.output, 2);
          return records.length >= 22 ? records : undefined;
        },
        120_000,
        500,
      );
      // "boom" counted 3 and was undone, so the next record counts 3 again.
      expect(output.map((r) => text(r.value))).toEqual([
        'a0=1',
        'a1=2',
        ...Array.from({ length: 20 }, (_, i) => `b${i}=${i + 3}`),
      ]);
      const dlq = await readCommitted(topics.dlq, 2);
      expect(dlq.map((r) => [text(r.key), text(r.value)])).toEqual([['k', 'boom']]);
      const headers = headersOf(dlq[0]!.headers);
      expect(headers).toMatchObject({
        trace: 'boom',
        [DLQ_HEADERS.node]: 'boom',
        [DLQ_HEADERS.sourceTopic]: topics.input,
        [DLQ_HEADERS.sourcePartition]: String(partition),
        [DLQ_HEADERS.sourceOffset]: '2',
      });
      expect(headers[DLQ_HEADERS.error]).toContain('boom: a bug in the processor');
      expect(errors.map((e) => [e.node, e.offset])).toEqual([['boom', 2n]]);
      // The changelog never saw the undone count: its values go 1, 2, 3, ... 22 with no repeat.
      const changelog = (await readCommitted(topics.changelog, 2)).map((r) => Number(text(r.value)));
      expect(changelog.at(-1)).toBe(22);
      expect(new Set(changelog).size).toBe(changelog.length);
      expect(streams.state).toBe('RUNNING');
      // Every fetch round is reported with the records it brought (the metrics' rounds and round sizes):
      // the 23 inputs, at least once each (a round fetched before a rebalance is fetched again).
      expect(rounds.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(values.length);
      expect(rounds.some((n) => n > 0)).toBe(true);
    } finally {
      await streams.close();
    }
  });
});
