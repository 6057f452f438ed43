// The processor API through the TopologyTestDriver: forwarding, stores, punctuation, re-routing, errors.
import { describe, expect, it } from 'vitest';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { jsonSerde, stringSerde } from '../../../src/stores/serdes.ts';
import { KeyNotLoadedError } from '../../../src/stores/types.ts';
import { ProcessingError } from '../../../src/topology/processing-errors.ts';
import { record } from '../../../src/topology/record.ts';
import { TopologyTestDriver } from '../../../src/topology/test-driver.ts';
import { Topology, TopologyError } from '../../../src/topology/topology.ts';
import type { KeyValueStore, Processor, ProcessorContext, Rec } from '../../../src/topology/types.ts';

const text = stringSerde as never;

/** Counts records per key in store `counts` and forwards "key=count" to `out`, odd counts also to `odd`. */
class Counter implements Processor<string, string, string, string> {
  #context!: ProcessorContext<string, string>;
  #store!: KeyValueStore<number>;
  readonly #prefetch: boolean;

  constructor(prefetch = true) {
    this.#prefetch = prefetch;
  }

  init(context: ProcessorContext<string, string>): void {
    this.#context = context;
    this.#store = context.getStore<number>('counts');
  }

  prefetch(rec: Rec<string, string>, keys: { add(store: string, key: string): void }): void {
    if (this.#prefetch) keys.add('counts', rec.key);
  }

  process(rec: Rec<string, string>): void {
    const count = (this.#store.get(rec.key) ?? 0) + 1;
    this.#store.put(rec.key, count);
    const out = record(rec.key, `${rec.key}=${count}@${this.#context.partition}`, rec.timestamp);
    this.#context.forward(out, 'out');
    if (count % 2 === 1) this.#context.forward(out, 'odd');
  }
}

function counterTopology(prefetch = true): Topology {
  return new Topology()
    .addSource('in', { topics: ['input'], valueSerde: text })
    .addProcessor('counter', () => new Counter(prefetch), 'in')
    .addStateStore({ name: 'counts', valueSerde: jsonSerde<number>() }, 'counter')
    .addSink('out', { topic: 'output', valueSerde: text }, 'counter')
    .addSink('odd', { topic: 'odd', valueSerde: text }, 'counter');
}

describe('TopologyTestDriver', () => {
  it('should keep state per key and forward to the named children when records are piped', async () => {
    const driver = new TopologyTestDriver(counterTopology(), { partitions: 3 });
    const input = driver.createInputTopic<string, string>('input', { valueSerde: text });
    for (const key of ['a', 'b', 'a', 'a']) await input.pipeInput(key, 'x');
    const out = driver.createOutputTopic<string, string>('output', { valueSerde: text }).readValuesToList();
    expect(out).toEqual([
      `a=1@${driver.partitionOf('a')}`,
      `b=1@${driver.partitionOf('b')}`,
      `a=2@${driver.partitionOf('a')}`,
      `a=3@${driver.partitionOf('a')}`,
    ]);
    expect(driver.createOutputTopic<string, string>('odd', { valueSerde: text }).readValuesToList()).toEqual([
      out[0],
      out[1],
      out[3],
    ]);
    expect(Object.fromEntries(await driver.storeEntries<number>('counts'))).toEqual({ a: 3, b: 1 });
    expect(driver.records('test-app-counts-changelog').length).toBe(4);
  });

  it('should write sink records to the partition their key hashes to when no partitioner is given', async () => {
    const driver = new TopologyTestDriver(counterTopology(), { partitions: 4 });
    const input = driver.createInputTopic<string, string>('input', { valueSerde: text });
    for (const key of ['k1', 'k2', 'k3', 'k4', 'k5']) await input.pipeInput(key, 'x');
    for (const r of driver.records('output')) expect(r.partition).toBe(partitionForKey(r.key!, 4));
  });

  it('should re-route a record whose key hashes to another partition instead of processing it there', async () => {
    const driver = new TopologyTestDriver(counterTopology(), { partitions: 4 });
    const right = driver.partitionOf('k7');
    const wrong = (right + 1) % 4;
    await driver.pipeRaw('input', wrong, Buffer.from('k7'), Buffer.from('x'));
    expect(driver.records('input').map((r) => r.partition)).toEqual([wrong, right]);
    expect(driver.createOutputTopic<string, string>('output', { valueSerde: text }).readValuesToList()).toEqual([
      `k7=1@${right}`,
    ]);
  });

  it('should throw KeyNotLoadedError when a processor reads a store key it did not prefetch', async () => {
    const driver = new TopologyTestDriver(counterTopology(false), { partitions: 2 });
    const input = driver.createInputTopic<string, string>('input', { valueSerde: text });
    // The topology sets no dead-letter topic, so the processing exception handler fails, naming the cause.
    const error: unknown = await input.pipeInput('a', 'x').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ProcessingError);
    expect((error as ProcessingError).cause).toBeInstanceOf(KeyNotLoadedError);
  });

  it('should run wall-clock punctuators when time advances and stream-time ones when records move stream time', async () => {
    const fired: string[] = [];
    class Ticker implements Processor<string, string> {
      init(context: ProcessorContext): void {
        context.schedule(1000, 'wall-clock', (t) => void fired.push(`wall@${t - Date.UTC(2026, 0, 1)}`));
        context.schedule(500, 'stream-time', (t) => void fired.push(`stream@${t}`));
      }
      process(): void {}
    }
    const topology = new Topology()
      .addSource('in', { topics: ['input'], valueSerde: text })
      .addProcessor('tick', () => new Ticker(), 'in');
    const driver = new TopologyTestDriver(topology, { partitions: 1 });
    await driver.advanceWallClockTime(999);
    expect(fired).toEqual([]);
    await driver.advanceWallClockTime(1);
    expect(fired).toEqual(['wall@1000']);
    const input = driver.createInputTopic<string, string>('input', { valueSerde: text });
    await input.pipeInput('a', 'x', { timestamp: 400 });
    await input.pipeInput('a', 'x', { timestamp: 700 });
    expect(fired).toEqual(['wall@1000', 'stream@700']);
  });

  it('should drop the uncommitted writes of a record whose processing throws', async () => {
    class Failing implements Processor<string, string> {
      #store!: KeyValueStore<number>;
      init(context: ProcessorContext): void {
        this.#store = context.getStore<number>('counts');
      }
      prefetch(rec: Rec<string, string>, keys: { add(store: string, key: string): void }): void {
        keys.add('counts', rec.key);
      }
      process(rec: Rec<string, string>): void {
        this.#store.put(rec.key, 1);
        if (rec.value === 'boom') throw new Error('boom');
      }
    }
    const topology = new Topology()
      .addSource('in', { topics: ['input'], valueSerde: text })
      .addProcessor('p', () => new Failing(), 'in')
      .addStateStore({ name: 'counts', valueSerde: jsonSerde<number>() }, 'p');
    const driver = new TopologyTestDriver(topology, { partitions: 1 });
    const input = driver.createInputTopic<string, string>('input', { valueSerde: text });
    await expect(input.pipeInput('a', 'boom')).rejects.toThrow('boom');
    expect((await driver.storeEntries('counts')).size).toBe(0);
  });
});

describe('Topology', () => {
  it('should refuse a node whose parent is not defined', () => {
    expect(() => new Topology().addProcessor('p', () => ({ process() {} }), 'missing')).toThrow(TopologyError);
  });

  it('should refuse a topic read by two sources and a repartition topic nobody reads', () => {
    const twice = new Topology().addSource('a', { topics: ['t'] }).addSource('b', { topics: ['t'] });
    expect(() => twice.validate()).toThrow(/read by both a and b/);
    const orphan = new Topology().addSource('a', { topics: ['t'] }).addRepartitionTopic('r');
    expect(() => orphan.validate()).toThrow(/has no source/);
  });

  it('should refuse forwarding to a node that is not a child', async () => {
    class Stray implements Processor<string, string> {
      #context!: ProcessorContext;
      init(context: ProcessorContext): void {
        this.#context = context;
      }
      process(rec: Rec<string, string>): void {
        this.#context.forward(rec, 'elsewhere');
      }
    }
    const topology = new Topology()
      .addSource('in', { topics: ['input'], valueSerde: text })
      .addProcessor('p', () => new Stray(), 'in');
    const driver = new TopologyTestDriver(topology, { partitions: 1 });
    await expect(
      driver.createInputTopic<string, string>('input', { valueSerde: text }).pipeInput('a', 'x'),
    ).rejects.toThrow(/has no child elsewhere/);
  });

  it('should describe its nodes', () => {
    expect(counterTopology().describe()).toContain('Processor: counter (stores: counts) --> out, odd');
  });
});
