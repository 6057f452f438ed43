// Tails every partition of some topics, read_committed, without a consumer group: positions are explicit and
// fetched through src/kafka's Fetcher (createReader: the Java read_committed rule, so aborted outcomes never
// reach API clients). Used for outcomes (from the end) and for the instances metadata topic (from the beginning).
import { type Consumer, ListOffsetTimestamps } from '@platformatic/kafka';
import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import {
  backoffDelayMs,
  BROKER_BACKOFF,
  BrokerOutage,
  isBrokerUnavailable,
  permanentKafkaError,
  retryUntilStopped,
} from '../kafka/retry.ts';
import { kafkaConnectionOptions } from '../kafka/security.ts';
import { type FetchPosition, type Fetcher, type FetchedRecord, isOutOfRange, tpKey } from '../kafka/fetcher.ts';
import { createReader } from '../kafka/reader.ts';

export interface TopicTailOptions {
  config: Config;
  logger: Logger;
  /** Names the client ("<appId>-<instanceId>-<purpose>"). */
  purpose: string;
  topics: string[];
  /** `end` = the last stable offset at start (nothing committed after it is missed), `beginning` = the log start. */
  from: 'end' | 'beginning';
  /** Called with each fetched partition's records in offset order; must not throw. */
  onRecords(records: FetchedRecord[]): void;
  /** Longest time a fetch waits for new data; bounds the delay of close() too. */
  maxWaitMs?: number;
  /** Where broker outages are reported (logged at a low rate, /readyz, metrics); one of its own by default. */
  outage?: BrokerOutage;
}

const FETCH_MAX_BYTES = 4 * 1024 * 1024;
const PARTITION_MAX_BYTES = 1024 * 1024;

export class TopicTail {
  readonly #options: TopicTailOptions;
  readonly #log: Logger;
  readonly #consumer: Consumer;
  readonly #fetcher: Fetcher;
  readonly #stop = new AbortController();
  readonly #outage: BrokerOutage;
  #positions: FetchPosition[] = [];
  #loop: Promise<void> | undefined;
  #caughtUp: { ends: Map<string, bigint>; resolve: () => void; promise: Promise<void> };

  constructor(options: TopicTailOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: `tail-${options.purpose}` });
    this.#outage = options.outage ?? new BrokerOutage(`tail-${options.purpose}`, { log: this.#log });
    const { config } = options;
    const reader = createReader({
      clientId: `${config.appId}-${config.instanceId}-${options.purpose}`,
      bootstrapBrokers: config.kafkaBrokers,
      security: kafkaConnectionOptions(config.kafkaSecurity, config.kafkaBrokers),
      // Required by the client; this consumer never joins the group nor commits offsets.
      groupId: `${config.appId}-${config.instanceId}-${options.purpose}`,
      requestTimeoutMs: 15_000,
      fetch: {
        maxWaitMs: options.maxWaitMs ?? 500,
        minBytes: 1,
        maxBytes: FETCH_MAX_BYTES,
        partitionMaxBytes: PARTITION_MAX_BYTES,
      },
    });
    this.#consumer = reader.consumer;
    this.#fetcher = reader.fetcher;
    this.#consumer.on('error', (error: Error) => this.#log.warn({ err: error }, 'tail consumer error'));
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.#caughtUp = { ends: new Map(), resolve, promise };
  }

  /** Positions every partition and starts tailing in the background. */
  async start(): Promise<void> {
    // Waits for the broker as long as it takes (or until close()): an API instance starting during a
    // broker restart must not exit. Missing topics and security failures stop it.
    const { positions, ends } = await retryUntilStopped(
      async () => ({
        positions: await this.#initialPositions(this.#options.from),
        ends: await this.#listOffsets(ListOffsetTimestamps.LATEST),
      }),
      {
        step: `${this.#options.purpose} list offsets`,
        outage: this.#outage,
        signal: this.#stop.signal,
        permanent: (error) => permanentKafkaError(error, this.#options.config.kafkaSecurity),
      },
    );
    this.#positions = positions;
    this.#caughtUp.ends = new Map(ends.map((p) => [tpKey(p.topic, p.partition), p.offset]));
    this.#checkCaughtUp();
    this.#loop = this.#run();
  }

  /** Resolves once every record committed before start() has been handed to onRecords, or the tail is closed. */
  caughtUp(): Promise<void> {
    return this.#caughtUp.promise;
  }

  async close(): Promise<void> {
    this.#stop.abort();
    // A start that waits for the broker to catch up must not wait for ever once the tail is closed.
    this.#caughtUp.resolve();
    await this.#loop;
    await this.#consumer.close(true).catch(() => undefined);
  }

  /** Fetches until close(), whatever fails: a broker outage is waited out with a bounded backoff. */
  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stop.signal.aborted) {
      try {
        await this.#step();
        failures = 0;
        this.#outage.recovered();
      } catch (error) {
        if (this.#stop.signal.aborted) break;
        const retryInMs = backoffDelayMs(BROKER_BACKOFF, failures++);
        if (isBrokerUnavailable(error)) this.#outage.failed(`${this.#options.purpose} fetch`, error, retryInMs);
        else this.#log.warn({ err: error, retryInMs }, 'tail fetch failed');
        if (isOutOfRange(error)) await this.#repositionOutOfRange();
        await sleep(retryInMs, this.#stop.signal);
      }
    }
  }

  async #step(): Promise<void> {
    const fetched = await this.#fetcher.fetch(this.#positions);
    for (const part of fetched) {
      const position = this.#positions.find((p) => p.topic === part.topic && p.partition === part.partition);
      if (!position || part.nextOffset <= position.offset) continue;
      if (part.records.length > 0) this.#options.onRecords(part.records);
      position.offset = part.nextOffset;
    }
    this.#checkCaughtUp();
  }

  #checkCaughtUp(): void {
    const ends = this.#caughtUp.ends;
    if (this.#positions.every((p) => p.offset >= (ends.get(tpKey(p.topic, p.partition)) ?? 0n)))
      this.#caughtUp.resolve();
  }

  async #initialPositions(from: 'end' | 'beginning'): Promise<FetchPosition[]> {
    // read_committed LATEST is the last stable offset: records of transactions still open there will commit after it.
    return this.#listOffsets(from === 'end' ? ListOffsetTimestamps.LATEST : ListOffsetTimestamps.EARLIEST);
  }

  async #listOffsets(timestamp: bigint): Promise<FetchPosition[]> {
    const offsets = await this.#consumer.listOffsets({ topics: this.#options.topics, timestamp, isolationLevel: 1 });
    const positions: FetchPosition[] = [];
    for (const topic of this.#options.topics) {
      const list = offsets.get(topic);
      if (!list) throw new Error(`topic ${topic} has no partitions; create it with \`bankstream topics create\``);
      list.forEach((offset, partition) => positions.push({ topic, partition, offset }));
    }
    return positions;
  }

  /** Retention deleted what we were about to read: skip to the log start (those records are gone for everyone). */
  async #repositionOutOfRange(): Promise<void> {
    const earliest = await this.#listOffsets(ListOffsetTimestamps.EARLIEST).catch(() => []);
    for (const e of earliest) {
      const position = this.#positions.find((p) => p.topic === e.topic && p.partition === e.partition);
      if (position && position.offset < e.offset) position.offset = e.offset;
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
