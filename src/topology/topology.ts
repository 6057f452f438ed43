// The Topology builder: sources, processors, sinks and state stores wired by name.
import { jsonSerde } from '../stores/serdes.ts';
import type { ProcessingExceptionHandler } from './processing-errors.ts';
import type { ProcessorSupplier, Serde, SinkPartitioner } from './types.ts';

export class TopologyError extends Error {
  readonly code = 'topology_invalid';
  constructor(message: string) {
    super(message);
    this.name = 'TopologyError';
  }
}

export interface SourceNode {
  readonly kind: 'source';
  readonly name: string;
  readonly topics: readonly string[];
  readonly keySerde: Serde<unknown>;
  readonly valueSerde: Serde<unknown>;
  /** Re-route records whose key does not hash (murmur2) to the partition they arrived on (default true). */
  readonly rerouteMisroutedKeys: boolean;
  readonly children: string[];
}

export interface ProcessorNode {
  readonly kind: 'processor';
  readonly name: string;
  readonly supplier: ProcessorSupplier;
  readonly stores: string[];
  readonly children: string[];
}

export interface SinkNode {
  readonly kind: 'sink';
  readonly name: string;
  readonly topic: string;
  readonly keySerde: Serde<unknown>;
  readonly valueSerde: Serde<unknown>;
  readonly partitioner: SinkPartitioner<unknown, unknown> | undefined;
}

export type TopologyNode = SourceNode | ProcessorNode | SinkNode;

export interface StoreSpec {
  readonly name: string;
  readonly valueSerde: Serde<unknown>;
  /** Whether the store has a changelog topic (default true). */
  readonly logged: boolean;
  readonly cacheEntriesMax: number;
  readonly skipOnRestore?: (key: string) => boolean;
}

export interface SourceOptions<K, V> {
  topics: string[];
  keySerde?: Serde<K>;
  valueSerde?: Serde<V>;
  rerouteMisroutedKeys?: boolean;
}

export interface SinkOptions<K, V> {
  topic: string;
  keySerde?: Serde<K>;
  valueSerde?: Serde<V>;
  partitioner?: SinkPartitioner<K, V>;
}

export interface RepartitionOptions {
  /** Dead-letter topic for records that do not authenticate (original bytes, reason in headers). */
  deadLetterTopic?: string;
}

export interface StoreOptionsInput<V> {
  name: string;
  valueSerde?: Serde<V>;
  logged?: boolean;
  cacheEntriesMax?: number;
  /** Changelog records restore skips (already expired data). */
  skipOnRestore?: (key: string) => boolean;
}

/** Keys and values as UTF-8 strings; null bytes stay null. */
export const stringKeySerde: Serde<unknown> = {
  serialize: (value) =>
    value === null || value === undefined ? (null as unknown as Buffer) : Buffer.from(String(value), 'utf8'),
  deserialize: (bytes) => (bytes === null || bytes === undefined ? null : bytes.toString('utf8')),
};

/** Raw bytes, untouched (so a processor can forward the original bytes to a dead-letter queue). */
export const bytesSerde: Serde<unknown> = {
  serialize: (value) => value as Buffer,
  deserialize: (bytes) => bytes,
};

export class Topology {
  readonly #nodes = new Map<string, TopologyNode>();
  readonly #stores = new Map<string, StoreSpec>();
  readonly #repartitionTopics = new Map<string, RepartitionOptions>();
  #processingExceptionHandler: ProcessingExceptionHandler = { response: 'fail' };

  addSource<K = string, V = Buffer>(name: string, options: SourceOptions<K, V>): this {
    this.#assertNewName(name);
    if (options.topics.length === 0) throw new TopologyError(`source ${name}: at least one topic is required`);
    this.#nodes.set(name, {
      kind: 'source',
      name,
      topics: [...options.topics],
      keySerde: (options.keySerde ?? stringKeySerde) as Serde<unknown>,
      valueSerde: (options.valueSerde ?? bytesSerde) as Serde<unknown>,
      rerouteMisroutedKeys: options.rerouteMisroutedKeys ?? true,
      children: [],
    });
    return this;
  }

  // biome-ignore lint/suspicious/noExplicitAny: a processor of any key/value types plugs into the untyped graph
  addProcessor(name: string, supplier: ProcessorSupplier<any, any, any, any>, ...parents: string[]): this {
    this.#assertNewName(name);
    this.#nodes.set(name, {
      kind: 'processor',
      name,
      supplier: supplier as ProcessorSupplier,
      stores: [],
      children: [],
    });
    this.#link(name, parents);
    return this;
  }

  addSink<K = string, V = Buffer>(name: string, options: SinkOptions<K, V>, ...parents: string[]): this {
    this.#assertNewName(name);
    this.#nodes.set(name, {
      kind: 'sink',
      name,
      topic: options.topic,
      keySerde: (options.keySerde ?? stringKeySerde) as Serde<unknown>,
      valueSerde: (options.valueSerde ?? bytesSerde) as Serde<unknown>,
      partitioner: options.partitioner as SinkPartitioner<unknown, unknown> | undefined,
    });
    this.#link(name, parents);
    return this;
  }

  /**
   * Declares a repartition topic: written by a sink and read back by a source of this topology.
   * It must be co-partitioned with the other sources (the engine checks at start-up). The engine signs
   * every record it writes there and applies only records that verify (src/kafka/record-mac.ts); the
   * others go to `deadLetterTopic`.
   */
  addRepartitionTopic(topic: string, options: RepartitionOptions = {}): this {
    this.#repartitionTopics.set(topic, { ...options });
    return this;
  }

  /** Where records of a repartition topic that do not verify go (undefined: dropped, logged and counted). */
  repartitionDeadLetterTopic(topic: string): string | undefined {
    return this.#repartitionTopics.get(topic)?.deadLetterTopic;
  }

  addStateStore<V>(options: StoreOptionsInput<V>, ...processorNames: string[]): this {
    if (this.#stores.has(options.name)) throw new TopologyError(`store ${options.name} is already defined`);
    this.#stores.set(options.name, {
      name: options.name,
      valueSerde: (options.valueSerde ?? jsonSerde<V>()) as Serde<unknown>,
      logged: options.logged ?? true,
      cacheEntriesMax: options.cacheEntriesMax ?? 100_000,
      ...(options.skipOnRestore === undefined ? {} : { skipOnRestore: options.skipOnRestore }),
    });
    for (const processorName of processorNames) {
      const node = this.#nodes.get(processorName);
      if (node?.kind !== 'processor')
        throw new TopologyError(`store ${options.name}: ${processorName} is not a processor`);
      node.stores.push(options.name);
    }
    return this;
  }

  /**
   * What the engine does with a record whose processing throws deterministically (processing-errors.ts):
   * send it to a dead-letter topic and go on, or stop. Without a dead-letter topic nothing can be kept,
   * so a topology that sets none fails (Kafka Streams' default, LogAndFail); the bank sets its DLQ.
   */
  setProcessingExceptionHandler(handler: ProcessingExceptionHandler): this {
    if (handler.response === 'dead-letter' && (typeof handler.topic !== 'string' || handler.topic.length === 0)) {
      throw new TopologyError('processing exception handler: a dead-letter topic is required');
    }
    if (handler.response !== 'dead-letter' && handler.response !== 'fail')
      throw new TopologyError(
        `processing exception handler: unknown response ${String((handler as { response: unknown }).response)}`,
      );
    this.#processingExceptionHandler = Object.freeze({ ...handler });
    return this;
  }

  processingExceptionHandler(): ProcessingExceptionHandler {
    return this.#processingExceptionHandler;
  }

  node(name: string): TopologyNode | undefined {
    return this.#nodes.get(name);
  }

  nodes(): TopologyNode[] {
    return [...this.#nodes.values()];
  }

  sources(): SourceNode[] {
    return this.nodes().filter((n): n is SourceNode => n.kind === 'source');
  }

  sinks(): SinkNode[] {
    return this.nodes().filter((n): n is SinkNode => n.kind === 'sink');
  }

  stores(): StoreSpec[] {
    return [...this.#stores.values()];
  }

  sourceTopics(): string[] {
    return [...new Set(this.sources().flatMap((s) => s.topics))];
  }

  /** Topics written by sinks, and the dead-letter topic of the processing exception handler. */
  sinkTopics(): string[] {
    const handler = this.#processingExceptionHandler;
    const topics = this.sinks().map((s) => s.topic);
    if (handler.response === 'dead-letter') topics.push(handler.topic);
    return [...new Set(topics)];
  }

  repartitionTopics(): string[] {
    return [...this.#repartitionTopics.keys()];
  }

  /** Throws a TopologyError when the graph is incomplete (dangling names, a source topic read twice). */
  validate(): this {
    const seen = new Map<string, string>();
    for (const source of this.sources()) {
      for (const topic of source.topics) {
        const other = seen.get(topic);
        if (other) throw new TopologyError(`topic ${topic} is read by both ${other} and ${source.name}`);
        seen.set(topic, source.name);
      }
    }
    for (const [topic, options] of this.#repartitionTopics) {
      if (!seen.has(topic)) throw new TopologyError(`repartition topic ${topic} has no source`);
      if (
        options.deadLetterTopic !== undefined &&
        (options.deadLetterTopic === topic || seen.has(options.deadLetterTopic))
      ) {
        throw new TopologyError(
          `repartition topic ${topic}: dead-letter topic ${options.deadLetterTopic} must not be a source topic`,
        );
      }
    }
    return this;
  }

  /** A human-readable description, as Kafka Streams' TopologyDescription. */
  describe(): string {
    const lines: string[] = [];
    for (const node of this.#nodes.values()) {
      if (node.kind === 'source')
        lines.push(`Source: ${node.name} (topics: ${node.topics.join(', ')}) --> ${node.children.join(', ')}`);
      if (node.kind === 'processor')
        lines.push(
          `Processor: ${node.name} (stores: ${node.stores.join(', ') || '-'}) --> ${node.children.join(', ') || '-'}`,
        );
      if (node.kind === 'sink') lines.push(`Sink: ${node.name} (topic: ${node.topic})`);
    }
    return lines.join('\n');
  }

  #assertNewName(name: string): void {
    if (!/^[A-Za-z0-9._-]+$/.test(name))
      throw new TopologyError(`node name ${JSON.stringify(name)} must be letters, digits, ".", "_" or "-"`);
    if (this.#nodes.has(name)) throw new TopologyError(`node ${name} is already defined`);
  }

  #link(child: string, parents: string[]): void {
    if (parents.length === 0) throw new TopologyError(`node ${child} needs at least one parent`);
    for (const parentName of parents) {
      const parent = this.#nodes.get(parentName);
      if (!parent) throw new TopologyError(`node ${child}: parent ${parentName} is not defined (define parents first)`);
      if (parent.kind === 'sink') throw new TopologyError(`node ${child}: parent ${parentName} is a sink`);
      parent.children.push(child);
    }
  }
}
