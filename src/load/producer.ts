// The upstream producer of a load run: KafkaJS with its default partitioner, which is the Java
// client's (murmur2(key) & 0x7fffffff) % partitions, idempotent with acks=all, as an independent
// upstream system would produce. A bounded number of produce requests is in flight at once.
import { Kafka, logLevel, Partitioners, type Producer } from 'kafkajs';
import { type KafkaSecurityConfig } from '../config/config.ts';
import { kafkajsConnectionOptions } from '../kafka/security.ts';
import { LoadError } from './errors.ts';
import { type LoadMessage } from './workload.ts';

export interface LoadProducerOptions {
  brokers: string[];
  topic: string;
  clientId: string;
  inflightBatchesMax: number;
  requestTimeoutMs?: number;
  security?: KafkaSecurityConfig;
}

/** After this many produce requests failing in a row the broker is not coming back: the run stops. */
const CONSECUTIVE_FAILURES_MAX = 5;

export class LoadProducer {
  readonly #producer: Producer;
  readonly #options: LoadProducerOptions;
  readonly #inflight = new Set<Promise<void>>();
  #consecutiveFailures = 0;
  #lastError: unknown;
  acked = 0;
  errors = 0;
  /** The first produce failure, for the summary. */
  firstError: string | undefined;

  private constructor(producer: Producer, options: LoadProducerOptions) {
    this.#producer = producer;
    this.#options = options;
  }

  /** Connects, and fails fast with `topic_missing` when the topic does not exist (it is never auto-created). */
  static async connect(options: LoadProducerOptions): Promise<LoadProducer> {
    const security = options.security ? kafkajsConnectionOptions(options.security) : {};
    const kafka = new Kafka({ clientId: options.clientId, brokers: options.brokers, ...security, logLevel: logLevel.NOTHING, connectionTimeout: 10_000, requestTimeout: options.requestTimeoutMs ?? 30_000 });
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.fetchTopicMetadata({ topics: [options.topic] });
    } catch (error) {
      throw new LoadError('topic_missing', `topic ${options.topic} is not readable on ${options.brokers.join(',')}; create it with \`bankstream topics create\``, { cause: error });
    } finally {
      await admin.disconnect();
    }
    const producer = kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      idempotent: true,
      allowAutoTopicCreation: false,
    });
    await producer.connect();
    return new LoadProducer(producer, options);
  }

  get inflight(): number {
    return this.#inflight.size;
  }

  /** Waits until a produce request may start; throws when too many requests failed in a row. */
  async slot(): Promise<void> {
    while (this.#inflight.size >= this.#options.inflightBatchesMax) await Promise.race(this.#inflight);
    this.#throwIfBroken();
  }

  /** Starts one produce request; `onAcked` runs once the broker acknowledged the whole batch. */
  send(messages: LoadMessage[], onAcked: (messages: LoadMessage[]) => void): void {
    const request = this.#producer
      .send({ topic: this.#options.topic, acks: -1, timeout: 30_000, messages: messages.map((m) => ({ key: m.key, value: m.value })) })
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
      .finally(() => this.#inflight.delete(request));
    this.#inflight.add(request);
  }

  /** Waits for every request in flight, for at most timeoutMs; what is still unanswered then counts as errors. */
  async drain(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const outcome = await Promise.race([Promise.all(this.#inflight).then(() => 'drained' as const), timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') throw new LoadError('drain_timeout', `${this.#inflight.size} produce requests still unanswered after ${timeoutMs} ms`);
    this.#throwIfBroken();
  }

  async close(): Promise<void> {
    await this.#producer.disconnect();
  }

  #throwIfBroken(): void {
    if (this.#consecutiveFailures < CONSECUTIVE_FAILURES_MAX) return;
    const message = this.#lastError instanceof Error ? this.#lastError.message : String(this.#lastError);
    throw new LoadError('produce_failing', `${this.#consecutiveFailures} produce requests failed in a row: ${message}`, { cause: this.#lastError });
  }
}
