// The upstream producer of a load run: KafkaJS with its default partitioner, which is the Java
// client's (murmur2(key) & 0x7fffffff) % partitions, idempotent with acks=all, as an independent
// upstream system would produce. A bounded number of produce requests is in flight at once, and at most
// ONE per partition: KafkaJS 2.2.4's idempotent producer numbers a partition's batches when it builds a
// request, so two concurrent sends to one partition race (tulios/kafkajs#598 and #1005): the broker
// answers OUT_OF_ORDER_SEQUENCE_NUMBER, or DUPLICATE_SEQUENCE_NUMBER, which KafkaJS takes as success
// while the batch was never written. Each send here carries one partition's records, chained after the
// previous send to that partition; partitions still go in parallel.
import { type Admin, Kafka, logLevel, Partitioners, type Producer } from 'kafkajs';
import type { KafkaSecurityConfig } from '../config/config.ts';
import { partitionForKey } from '../kafka/partitioner.ts';
import { kafkajsConnectionOptions } from '../kafka/security.ts';
import { LoadError } from './errors.ts';
import type { LoadMessage } from './workload.ts';

export interface LoadProducerOptions {
  brokers: string[];
  topic: string;
  clientId: string;
  inflightBatchesMax: number;
  requestTimeoutMs?: number;
  security?: KafkaSecurityConfig;
}

/** A topic created a moment ago may not be served yet (a retriable error): asked again for this long at most. */
const TOPIC_METADATA_WAIT_MS = 5000;
const TOPIC_METADATA_RETRY_MS = 200;

async function topicPartitions(admin: Admin, topic: string): Promise<number> {
  const deadline = Date.now() + TOPIC_METADATA_WAIT_MS;
  for (;;) {
    try {
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      const partitions = metadata.topics[0]?.partitions.length ?? 0;
      if (partitions < 1) throw new Error(`topic ${topic} has no partitions`);
      return partitions;
    } catch (error) {
      if (!(error as { retriable?: boolean }).retriable || Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, TOPIC_METADATA_RETRY_MS));
    }
  }
}

/** After this many produce requests failing in a row the broker is not coming back: the run stops. */
const CONSECUTIVE_FAILURES_MAX = 5;

export class LoadProducer {
  readonly #producer: Producer;
  readonly #options: LoadProducerOptions;
  readonly #inflight = new Set<Promise<void>>();
  readonly #partitions: number;
  /** The last send to each partition: the next one to it starts when it is answered. */
  readonly #partitionTails = new Map<number, Promise<void>>();
  #consecutiveFailures = 0;
  #lastError: unknown;
  acked = 0;
  errors = 0;
  /** The first produce failure, for the summary. */
  firstError: string | undefined;

  private constructor(producer: Producer, options: LoadProducerOptions, partitions: number) {
    this.#producer = producer;
    this.#options = options;
    this.#partitions = partitions;
  }

  /** Connects, and fails fast with `topic_missing` when the topic does not exist (it is never auto-created). */
  static async connect(options: LoadProducerOptions): Promise<LoadProducer> {
    const security = options.security ? kafkajsConnectionOptions(options.security) : {};
    const kafka = new Kafka({
      clientId: options.clientId,
      brokers: options.brokers,
      ...security,
      logLevel: logLevel.NOTHING,
      connectionTimeout: 10_000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
    });
    const admin = kafka.admin();
    await admin.connect();
    let partitions: number;
    try {
      partitions = await topicPartitions(admin, options.topic);
    } catch (error) {
      throw new LoadError(
        'topic_missing',
        `topic ${options.topic} is not readable on ${options.brokers.join(',')}; create it with \`bankstream topics create\``,
        { cause: error },
      );
    } finally {
      await admin.disconnect();
    }
    const producer = kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      idempotent: true,
      allowAutoTopicCreation: false,
    });
    await producer.connect();
    return new LoadProducer(producer, options, partitions);
  }

  get inflight(): number {
    return this.#inflight.size;
  }

  /** Waits until a produce request may start; throws when too many requests failed in a row. */
  async slot(): Promise<void> {
    while (this.#inflight.size >= this.#options.inflightBatchesMax) await Promise.race(this.#inflight);
    this.#throwIfBroken();
  }

  /**
   * Starts the produce requests of a batch, one per partition it touches (the Java partitioner's choice,
   * as KafkaJS's DefaultPartitioner would make it); `onAcked` runs for each partition's records once the
   * broker acknowledged them.
   */
  send(messages: LoadMessage[], onAcked: (messages: LoadMessage[]) => void): void {
    const byPartition = new Map<number, LoadMessage[]>();
    for (const message of messages) {
      const partition = partitionForKey(message.key, this.#partitions);
      let group = byPartition.get(partition);
      if (!group) byPartition.set(partition, (group = []));
      group.push(message);
    }
    for (const [partition, group] of byPartition) this.#sendToPartition(partition, group, onAcked);
  }

  #sendToPartition(partition: number, messages: LoadMessage[], onAcked: (messages: LoadMessage[]) => void): void {
    const previous = this.#partitionTails.get(partition) ?? Promise.resolve();
    const request = previous
      .then(() =>
        this.#producer.send({
          topic: this.#options.topic,
          acks: -1,
          timeout: 30_000,
          messages: messages.map((m) => ({ key: m.key, value: m.value, partition })),
        }),
      )
      .then(
        () => {
          this.acked += messages.length;
          this.#consecutiveFailures = 0;
          onAcked(messages);
        },
        (error: unknown) => {
          this.errors += messages.length;
          this.#consecutiveFailures++;
          this.#lastError = error;
          this.firstError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        },
      )
      .finally(() => {
        this.#inflight.delete(request);
        if (this.#partitionTails.get(partition) === request) this.#partitionTails.delete(partition);
      });
    this.#partitionTails.set(partition, request);
    this.#inflight.add(request);
  }

  /** Waits for every request in flight, for at most timeoutMs; what is still unanswered then counts as errors. */
  async drain(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const outcome = await Promise.race([Promise.all(this.#inflight).then(() => 'drained' as const), timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout')
      throw new LoadError(
        'drain_timeout',
        `${this.#inflight.size} produce requests still unanswered after ${timeoutMs} ms`,
      );
    this.#throwIfBroken();
  }

  async close(): Promise<void> {
    await this.#producer.disconnect();
  }

  #throwIfBroken(): void {
    if (this.#consecutiveFailures < CONSECUTIVE_FAILURES_MAX) return;
    const message = this.#lastError instanceof Error ? this.#lastError.message : String(this.#lastError);
    throw new LoadError(
      'produce_failing',
      `${this.#consecutiveFailures} produce requests failed in a row: ${message}`,
      { cause: this.#lastError },
    );
  }
}
