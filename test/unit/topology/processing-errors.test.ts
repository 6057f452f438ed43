// The processing exception handler (KIP-1033) through the TopologyTestDriver: a record whose processing
// throws deterministically goes to the dead-letter topic with its error in headers, none of its partial
// effects (store writes, forwarded records, changelog entries) survive, and the next records are processed.
import { describe, expect, it } from 'vitest';
import { jsonSerde, stringSerde } from '../../../src/stores/serdes.ts';
import { MemoryTaskStore } from '../../../src/stores/memory-store.ts';
import { StoreFailedError } from '../../../src/stores/types.ts';
import {
  DLQ_HEADERS,
  ProcessingError,
  type ProcessingErrorInfo,
  type ProcessingExceptionHandler,
} from '../../../src/topology/processing-errors.ts';
import { record } from '../../../src/topology/record.ts';
import { TopologyTestDriver } from '../../../src/topology/test-driver.ts';
import { Topology } from '../../../src/topology/topology.ts';
import type { KeyValueStore, Processor, ProcessorContext, Rec, Serde } from '../../../src/topology/types.ts';

const text = stringSerde as never;
const DLQ = 'input.dlq';

/**
 * Counts records per key and in a `total` key, forwards "key=count", then misbehaves on command:
 * "boom" throws after its writes and forward, "flaky" throws on its first attempt only, "infra" throws a
 * store failure, "bad-key" names a key no store can keep, "unserializable" forwards what the sink cannot write.
 */
class Poisonable implements Processor<string, string, string, unknown> {
  #context!: ProcessorContext<string, unknown>;
  #store!: KeyValueStore<number>;
  readonly attempts = new Map<string, number>();

  init(context: ProcessorContext<string, unknown>): void {
    this.#context = context;
    this.#store = context.getStore<number>('counts');
  }

  prefetch(rec: Rec<string, string>, keys: { add(store: string, key: string): void }): void {
    keys.add('counts', rec.key);
    keys.add('counts', 'total');
    if (rec.value === 'bad-key') keys.add('counts', 'k-\ud800');
  }

  process(rec: Rec<string, string>): void {
    const attempt = (this.attempts.get(`${rec.key}/${rec.value}`) ?? 0) + 1;
    this.attempts.set(`${rec.key}/${rec.value}`, attempt);
    const count = (this.#store.get(rec.key) ?? 0) + 1;
    this.#store.put(rec.key, count);
    this.#store.put('total', (this.#store.get('total') ?? 0) + 1);
    this.#context.forward(
      record(rec.key, rec.value === 'unserializable' ? { big: 1n } : `${rec.key}=${count}`, rec.timestamp),
      'out',
    );
    if (rec.value === 'boom') throw new Error(`boom on ${rec.key}`);
    if (rec.value === 'flaky' && attempt === 1) throw new Error('flaky');
    if (rec.value === 'infra') throw new StoreFailedError('counts', 'put');
  }
}

const jsonOut: Serde<unknown> = {
  serialize: (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)),
  deserialize: (b) => b.toString(),
};

function topology(handler: ProcessingExceptionHandler | undefined, processors: Poisonable[] = []): Topology {
  const t = new Topology()
    .addSource('in', { topics: ['input'], valueSerde: text })
    .addProcessor(
      'poisonable',
      () => {
        const p = new Poisonable();
        processors.push(p);
        return p;
      },
      'in',
    )
    .addStateStore({ name: 'counts', valueSerde: jsonSerde<number>() }, 'poisonable')
    .addSink('out', { topic: 'output', valueSerde: jsonOut }, 'poisonable');
  return handler ? t.setProcessingExceptionHandler(handler) : t;
}

function driverFor(handler: ProcessingExceptionHandler | undefined = { response: 'dead-letter', topic: DLQ }) {
  const errors: ProcessingErrorInfo[] = [];
  const processors: Poisonable[] = [];
  const driver = new TopologyTestDriver(topology(handler, processors), {
    partitions: 1,
    onProcessingError: (info) => errors.push(info),
  });
  const input = driver.createInputTopic<string, string>('input', { valueSerde: text });
  const output = () => driver.records('output').map((r) => r.value!.toString());
  return { driver, input, output, errors, processors };
}

const headerText = (headers: Readonly<Record<string, Buffer>>) =>
  Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, v.toString('utf8')]));

describe('processing exception handler', () => {
  it('should dead-letter a record that throws again when retried alone, drop its partial writes and outputs, and process the next records', async () => {
    const { driver, input, output, errors, processors } = driverFor();
    await input.pipeInput('a', 'x');
    await input.pipeInput('a', 'boom', { headers: { trace: Buffer.from('t-1') } });
    await input.pipeInput('a', 'y');
    expect(output()).toEqual(['a=1', 'a=2']);
    expect(Object.fromEntries(await driver.storeEntries<number>('counts'))).toEqual({ a: 2, total: 2 });
    // The changelog carries the committed writes only: two records, two keys each.
    expect(driver.records('test-app-counts-changelog').map((r) => `${r.key}=${r.value}`)).toEqual([
      'a=1',
      'total=1',
      'a=2',
      'total=2',
    ]);
    const dlq = driver.records(DLQ);
    expect(dlq).toHaveLength(1);
    expect(dlq[0]!.key!.toString()).toBe('a');
    expect(dlq[0]!.value!.toString()).toBe('boom');
    const headers = headerText(dlq[0]!.headers);
    expect(headers).toMatchObject({
      trace: 't-1',
      [DLQ_HEADERS.node]: 'poisonable',
      [DLQ_HEADERS.sourceTopic]: 'input',
      [DLQ_HEADERS.sourcePartition]: '0',
      [DLQ_HEADERS.sourceOffset]: '1',
    });
    expect(headers[DLQ_HEADERS.error]).toContain('Error: boom on a');
    expect(processors[0]!.attempts.get('a/boom')).toBe(2);
    expect(errors.map((e) => [e.node, e.phase, e.offset])).toEqual([['poisonable', 'process', 1n]]);
  });

  it('should keep the effects of the retry alone, once, when only the first attempt throws', async () => {
    const { driver, input, output, errors } = driverFor();
    await input.pipeInput('a', 'flaky');
    expect(output()).toEqual(['a=1']);
    expect(Object.fromEntries(await driver.storeEntries<number>('counts'))).toEqual({ a: 1, total: 1 });
    expect(driver.records(DLQ)).toHaveLength(0);
    expect(errors).toHaveLength(0);
  });

  it('should propagate an infrastructure error instead of dead-lettering the record when a store has failed', async () => {
    const { driver, input } = driverFor();
    await expect(input.pipeInput('a', 'infra')).rejects.toBeInstanceOf(StoreFailedError);
    expect(driver.records(DLQ)).toHaveLength(0);
    expect((await driver.storeEntries<number>('counts')).size).toBe(0);
  });

  it('should throw a ProcessingError naming the record when the handler is fail', async () => {
    const { driver, input } = driverFor({ response: 'fail' });
    const error = await input.pipeInput('a', 'boom').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ProcessingError);
    expect(error).toMatchObject({ code: 'processing_failed', node: 'poisonable', topic: 'input', offset: 0n });
    expect(driver.records('output')).toHaveLength(0);
  });

  it('should dead-letter a record whose prefetch names a key no store can keep, without running it', async () => {
    const { driver, input, output, errors, processors } = driverFor();
    await input.pipeInput('a', 'bad-key');
    await input.pipeInput('a', 'x');
    expect(output()).toEqual(['a=1']);
    expect(processors[0]!.attempts.has('a/bad-key')).toBe(false);
    expect(errors.map((e) => [e.phase, e.node])).toEqual([['prefetch', 'poisonable']]);
    expect(headerText(driver.records(DLQ)[0]!.headers)[DLQ_HEADERS.error]).toContain('not well-formed');
  });

  it('should name the sink and drop the processor writes when a sink cannot serialize the forwarded value', async () => {
    const { driver, input, output, errors } = driverFor();
    await input.pipeInput('a', 'unserializable');
    await input.pipeInput('a', 'x');
    expect(output()).toEqual(['a=1']);
    expect(Object.fromEntries(await driver.storeEntries<number>('counts'))).toEqual({ a: 1, total: 1 });
    expect(errors.map((e) => [e.phase, e.node])).toEqual([['process', 'out']]);
  });

  it('should dead-letter a record the source cannot deserialize', async () => {
    const failing: Serde<string> = {
      serialize: (v) => Buffer.from(v),
      deserialize: (b) => {
        if (b.toString() === 'garbage') throw new Error('cannot deserialize');
        return b.toString();
      },
    };
    const t = new Topology()
      .addSource('in', { topics: ['input'], valueSerde: failing })
      .addProcessor('poisonable', () => new Poisonable(), 'in')
      .addStateStore({ name: 'counts', valueSerde: jsonSerde<number>() }, 'poisonable')
      .addSink('out', { topic: 'output', valueSerde: jsonOut }, 'poisonable')
      .setProcessingExceptionHandler({ response: 'dead-letter', topic: DLQ });
    const errors: ProcessingErrorInfo[] = [];
    const driver = new TopologyTestDriver(t, { partitions: 1, onProcessingError: (info) => errors.push(info) });
    await driver.pipeRaw('input', 0, Buffer.from('a'), Buffer.from('garbage'));
    await driver.pipeRaw('input', 0, Buffer.from('a'), Buffer.from('x'));
    expect(driver.records('output').map((r) => r.value!.toString())).toEqual(['a=1']);
    expect(errors.map((e) => [e.phase, e.node])).toEqual([['deserialize', 'in']]);
    expect(driver.records(DLQ)[0]!.value!.toString()).toBe('garbage');
  });

  it('should name the innermost processor when a child processor throws', async () => {
    class Forwarder implements Processor<string, string> {
      #context!: ProcessorContext;
      init(context: ProcessorContext): void {
        this.#context = context;
      }
      process(rec: Rec<string, string>): void {
        this.#context.forward(rec);
      }
    }
    const t = new Topology()
      .addSource('in', { topics: ['input'], valueSerde: text })
      .addProcessor('outer', () => new Forwarder(), 'in')
      .addProcessor('poisonable', () => new Poisonable(), 'outer')
      .addStateStore({ name: 'counts', valueSerde: jsonSerde<number>() }, 'poisonable')
      .addSink('out', { topic: 'output', valueSerde: jsonOut }, 'poisonable')
      .setProcessingExceptionHandler({ response: 'dead-letter', topic: DLQ });
    const errors: ProcessingErrorInfo[] = [];
    const driver = new TopologyTestDriver(t, { partitions: 1, onProcessingError: (info) => errors.push(info) });
    const input = driver.createInputTopic<string, string>('input', { valueSerde: text });
    await input.pipeInput('a', 'boom');
    expect(errors.map((e) => e.node)).toEqual(['poisonable']);
  });
});

describe('punctuation exceptions', () => {
  it('should undo a throwing punctuation, report it and run the next one when the handler dead-letters', async () => {
    class Ticker implements Processor<string, string, string, string> {
      runs = 0;
      init(context: ProcessorContext<string, string>): void {
        const store = context.getStore<number>('counts');
        context.schedule(1000, 'wall-clock', () => {
          this.runs++;
          store.put('ticks', this.runs);
          context.forward(record('tick', `tick ${this.runs}`, 0));
          if (this.runs === 1) throw new Error('first tick fails');
        });
      }
      process(): void {}
    }
    const t = new Topology()
      .addSource('in', { topics: ['input'], valueSerde: text })
      .addProcessor('ticker', () => new Ticker(), 'in')
      .addStateStore({ name: 'counts', valueSerde: jsonSerde<number>() }, 'ticker')
      .addSink('out', { topic: 'output', valueSerde: text }, 'ticker')
      .setProcessingExceptionHandler({ response: 'dead-letter', topic: DLQ });
    const errors: ProcessingErrorInfo[] = [];
    const driver = new TopologyTestDriver(t, { partitions: 1, onProcessingError: (info) => errors.push(info) });
    await driver.advanceWallClockTime(1000);
    expect(driver.records('output')).toHaveLength(0);
    expect((await driver.storeEntries<number>('counts')).size).toBe(0);
    expect(errors.map((e) => [e.node, e.phase, e.topic, e.offset])).toEqual([['ticker', 'punctuate', null, -1n]]);
    await driver.advanceWallClockTime(1000);
    expect(driver.records('output').map((r) => r.value!.toString())).toEqual(['tick 2']);
    expect(Object.fromEntries(await driver.storeEntries<number>('counts'))).toEqual({ ticks: 2 });
    expect(driver.records(DLQ)).toHaveLength(0);
  });
});

describe('store savepoints', () => {
  it('should undo the puts and deletes since the savepoint and keep the first-write order of earlier writes', async () => {
    const store = new MemoryTaskStore<number>(
      { name: 's', valueSerde: jsonSerde<number>(), logged: true, cacheEntriesMax: 10 },
      { strictPrefetch: false },
    );
    store.put('a', 1);
    store.put('c', 3);
    store.savepoint();
    store.put('a', 10);
    store.put('b', 2);
    store.delete('c');
    store.put('b', 20);
    store.rollbackToSavepoint();
    expect(store.pendingChangelog().map((e) => `${e.key}=${e.value?.toString() ?? 'null'}`)).toEqual(['a=1', 'c=3']);
    expect([store.get('a'), store.get('b'), store.get('c')]).toEqual([1, undefined, 3]);
    await store.close();
  });
});
