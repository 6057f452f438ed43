// Who runs which partition: the routing table of interactive queries (issue 7).
//
// Every instance publishes {instanceId, url, generation, partitions, state, at} to the compacted topic
// `<appId>-instances` (key = instanceId) on every streams status change, and tails that topic from the
// beginning to keep the latest record of every instance. A partition's owner is the instance claiming
// it with the highest group generation: after a rebalance the new owner's claim carries a newer generation
// than the stale claim of the old one, which stops claiming it when it starts rebalancing anyway.
// An instance claims only partitions whose tasks are RUNNING (restored), and nothing while the group
// rebalances, so "no owner" means restoring or moving: the API answers 503 + Retry-After then.
// The table is advisory: the instance that finally serves a query checks its own task state, so a stale
// entry costs a 503, never an answer from a store that is not the owner's.
import { type Logger } from 'pino';
import { type Config, instancesTopic } from '../config/config.ts';
import { createIdempotentProducer } from '../kafka/clients.ts';
import { type BrokerHealth, type BrokerOutage, isBrokerUnavailable } from '../kafka/retry.ts';
import { kafkaConnectionOptions } from '../kafka/security.ts';
import { type BankstreamProducer } from '../kafka/producer.ts';
import { type StreamsStatus } from '../runtime/kafka-streams.ts';
import { type FetchedRecord } from '../runtime/fetcher.ts';
import { TopicTail } from './tail.ts';

export interface InstanceRecord {
  instanceId: string;
  url: string;
  /** Consumer group generation of the claim; -1 before the first assignment. */
  generation: number;
  /** Partitions whose tasks run on this instance (empty unless state is RUNNING). */
  partitions: number[];
  state: string;
  /** Partitions it keeps standby tasks for (stale reads); absent in records of earlier versions. */
  standby?: number[];
  /** ISO-8601 time of publication. */
  at: string;
}

export interface Owner {
  instanceId: string;
  url: string;
}

const PUBLISH_BACKOFF_MIN_MS = 100;
const PUBLISH_BACKOFF_MAX_MS = 5000;
const CLOSE_PUBLISH_TIMEOUT_MS = 3000;

export class InstanceDirectory {
  readonly #config: Config;
  readonly #log: Logger;
  readonly #url: () => string;
  readonly #topic: string;
  readonly #producer: BankstreamProducer;
  readonly #tail: TopicTail;
  readonly #instances = new Map<string, InstanceRecord>();
  #next: InstanceRecord | null | undefined;
  #publishing: Promise<void> | undefined;
  #closed = false;
  readonly #outage: BrokerOutage | undefined;

  /** `url` is read at each publication: the advertised URL is only final once the server listens. */
  constructor(config: Config, logger: Logger, url: () => string, brokerHealth?: BrokerHealth) {
    this.#config = config;
    this.#log = logger.child({ component: 'instances' });
    this.#url = url;
    this.#topic = instancesTopic(config.appId);
    this.#producer = createIdempotentProducer({
      bootstrapBrokers: config.kafkaBrokers,
      security: kafkaConnectionOptions(config.kafkaSecurity, config.kafkaBrokers),
      clientId: `${config.appId}-${config.instanceId}-instances`,
      requestTimeoutMs: 15_000,
      produceTimeoutMs: 10_000,
      retries: 3,
      retryDelayMs: 100,
    });
    const outage = brokerHealth?.outage('instances', this.#log);
    this.#outage = outage;
    this.#tail = new TopicTail({ config, logger, purpose: 'instances', topics: [this.#topic], from: 'beginning', onRecords: (records) => this.#onRecords(records), ...(outage ? { outage } : {}) });
  }

  /** Starts tailing; resolves when the records published before are read. */
  async start(): Promise<void> {
    await this.#tail.start();
    await this.#tail.caughtUp();
  }

  /** Publishes this instance's claim for a streams status (latest wins; retried until sent or superseded). */
  publish(status: StreamsStatus): void {
    if (this.#closed) return;
    const running = status.state === 'RUNNING' ? status.running : [];
    this.#enqueue({ instanceId: this.#config.instanceId, url: this.#url(), generation: status.generationId ?? -1, partitions: running, state: status.state, standby: status.standby, at: new Date().toISOString() });
  }

  /** Instances (other than this one) keeping a standby of a partition: where a stale read can go. */
  standbyHoldersOf(partition: number): Owner[] {
    return this.instances()
      .filter((r) => r.instanceId !== this.#config.instanceId && (r.standby ?? []).includes(partition))
      .map((r) => ({ instanceId: r.instanceId, url: r.url }));
  }

  /** The instance running a partition, or undefined while it is restoring, unowned or moving. */
  ownerOf(partition: number): Owner | undefined {
    return ownerAmong(this.#instances.values(), partition);
  }

  instances(): InstanceRecord[] {
    return [...this.#instances.values()].sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  }

  /** Removes this instance's record (a tombstone), so nobody routes to it, then stops. */
  async close(): Promise<void> {
    this.#enqueue(null);
    this.#closed = true;
    // Bounded: with Kafka down the tombstone cannot be sent, and the next owner's newer claim wins anyway.
    await Promise.race([this.#publishing, new Promise((resolve) => setTimeout(resolve, CLOSE_PUBLISH_TIMEOUT_MS).unref())]);
    await this.#tail.close();
    await this.#producer.close().catch(() => undefined);
  }

  #enqueue(record: InstanceRecord | null): void {
    this.#next = record;
    this.#publishing ??= this.#drain().finally(() => (this.#publishing = undefined));
  }

  async #drain(): Promise<void> {
    let backoffMs = PUBLISH_BACKOFF_MIN_MS;
    while (this.#next !== undefined) {
      const record = this.#next;
      try {
        await this.#send(record);
        if (this.#next === record) this.#next = undefined;
        backoffMs = PUBLISH_BACKOFF_MIN_MS;
      } catch (error) {
        // A closing instance gives up after one try: its claim is superseded by the next owner's generation anyway.
        if (this.#closed) return;
        // A broker outage is logged at a low rate by its tracker; the claim is retried until sent or superseded.
        if (this.#outage && isBrokerUnavailable(error)) this.#outage.failed('publish instance record', error, backoffMs);
        else this.#log.warn({ err: error, retryInMs: backoffMs }, 'publishing the instance record failed');
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
        backoffMs = Math.min(backoffMs * 2, PUBLISH_BACKOFF_MAX_MS);
      }
    }
  }

  async #send(record: InstanceRecord | null): Promise<void> {
    const key = Buffer.from(this.#config.instanceId, 'utf8');
    const message = record ? { topic: this.#topic, key, value: Buffer.from(JSON.stringify(record), 'utf8') } : { topic: this.#topic, key };
    await this.#producer.send({ messages: [message] });
    this.#log.debug({ record }, 'instance record published');
  }

  #onRecords(records: FetchedRecord[]): void {
    for (const record of records) {
      const instanceId = record.key?.toString('utf8');
      if (!instanceId) continue;
      if (!record.value) {
        this.#instances.delete(instanceId);
        continue;
      }
      const parsed = parseRecord(record.value);
      if (parsed && parsed.instanceId === instanceId) this.#instances.set(instanceId, parsed);
      else this.#log.warn({ instanceId, offset: String(record.offset) }, 'malformed instance record ignored');
    }
  }
}

/**
 * The claim with the highest generation wins; two claims in the same generation (one of them stale, e.g.
 * an instance that crashed and came back) mean the partition is moving: nobody is named.
 */
export function ownerAmong(records: Iterable<InstanceRecord>, partition: number): Owner | undefined {
  let best: InstanceRecord | undefined;
  let tie = false;
  for (const record of records) {
    if (!record.partitions.includes(partition)) continue;
    if (!best || record.generation > best.generation) {
      best = record;
      tie = false;
    } else if (record.generation === best.generation) tie = true;
  }
  return best && !tie ? { instanceId: best.instanceId, url: best.url } : undefined;
}

export function parseRecord(value: Buffer): InstanceRecord | undefined {
  try {
    const v = JSON.parse(value.toString('utf8')) as Partial<InstanceRecord>;
    const valid =
      typeof v.instanceId === 'string' &&
      typeof v.url === 'string' &&
      /^https?:\/\//.test(v.url) &&
      Number.isSafeInteger(v.generation) &&
      Array.isArray(v.partitions) &&
      v.partitions.every((p) => Number.isSafeInteger(p) && p >= 0) &&
      (v.standby === undefined || (Array.isArray(v.standby) && v.standby.every((p) => Number.isSafeInteger(p) && p >= 0)));
    return valid ? (v as InstanceRecord) : undefined;
  } catch {
    return undefined;
  }
}
