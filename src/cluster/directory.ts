// Who runs which partition: the routing table of interactive queries (issue 7), authenticated (issue 15).
//
// Every instance publishes {instanceId, url, generation, partitions, state, at} to the compacted topic
// `<appId>-instances` (key = instanceId) on every streams status change and every DIRECTORY_REPUBLISH_MS,
// and tails that topic from the beginning to keep the latest record of every instance. A partition's owner
// is the instance claiming it with the highest group generation: after a rebalance the new owner's claim
// carries a newer generation than the stale claim of the old one, which stops claiming it when it starts
// rebalancing anyway. An instance claims only partitions whose tasks are RUNNING (restored), and nothing
// while the group rebalances, so "no owner" means restoring or moving: the API answers 503 + Retry-After then.
// The table is advisory: the instance that finally serves a query checks its own task state, so a stale
// entry costs a 503, never an answer from a store that is not the owner's.
//
// Trust (docs/security.md): whoever can write the topic is not trusted. A record counts only when
//   1. it carries a MAC under the cluster secret (purpose 'directory', over the key and the exact record
//      bytes; tombstones carry theirs in a header), so only instances can make one;
//   2. its URL fits INSTANCE_URL_ALLOW (default: siblings of this instance's ADVERTISED_URL), so even a
//      holder of the secret cannot point reads at an arbitrary address;
//   3. it is not older than the record already held for that instance (generation, then `at`), so a
//      replayed old record does not replace a newer one;
// and a claim is believed only up to the group generation THIS instance is assigned in: every member of a
// consumer group shares the group's generation, so a claim of a later generation waits until we join it,
// and a claim of a generation the group never reached never wins (it cannot "win for good").
// Anything else is ignored, counted (bankstream_directory_records_rejected_total{reason}) and logged.
// What a topic writer without the secret can still do is delete or replay, i.e. cause 503s; the periodic
// republication heals that within DIRECTORY_REPUBLISH_MS.
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { ClusterKeys } from '../config/cluster-key.ts';
import { type Config, instanceUrlAllowed, instancesTopic } from '../config/config.ts';
import { createIdempotentProducer } from '../kafka/clients.ts';
import type { FetchedRecord } from '../kafka/fetcher.ts';
import type { BankstreamProducer } from '../kafka/producer.ts';
import { type BrokerHealth, type BrokerOutage, isBrokerUnavailable } from '../kafka/retry.ts';
import { kafkaConnectionOptions } from '../kafka/security.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { StreamsStatus } from '../streams/status.ts';
import { TopicTail } from '../tails/topic-tail.ts';
import {
  type InstanceRecord,
  newerThan,
  openRecordValue,
  openTombstoneHeader,
  type Owner,
  ownerAmong,
  type RejectReason,
  signedRecordValue,
  signedTombstoneHeader,
  TOMBSTONE_MAC_HEADER,
} from './directory-records.ts';

export interface InstanceDirectoryOptions {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  /** Read at each publication: the advertised URL is only final once the server listens. */
  url: () => string;
  /** The group generation this instance is assigned in (undefined before its first assignment). */
  localGeneration: () => number | undefined;
  /** Where a broker outage seen by the directory's tail and publications is reported. */
  brokerHealth?: BrokerHealth;
}

const PUBLISH_BACKOFF_MIN_MS = 100;
const PUBLISH_BACKOFF_MAX_MS = 5000;
const CLOSE_PUBLISH_TIMEOUT_MS = 3000;
/** Republication of this instance's record: heals a deleted or replayed record (a topic writer's DoS). */
const DIRECTORY_REPUBLISH_MS = 30_000;
const REJECT_LOG_INTERVAL_MS = 10_000;

export class InstanceDirectory {
  readonly #config: Config;
  readonly #keys: ClusterKeys;
  readonly #log: Logger;
  readonly #url: () => string;
  readonly #localGeneration: () => number | undefined;
  readonly #topic: string;
  readonly #producer: BankstreamProducer;
  readonly #tail: TopicTail;
  readonly #rejected: Counter<'reason'>;
  /** Per reason: when the last warning was logged and how many rejections were not logged since. */
  readonly #logged = new Map<RejectReason, { atMs: number; suppressed: number }>();
  readonly #instances = new Map<string, InstanceRecord>();
  /** Per instance id: the newest (generation, at) accepted, kept after a tombstone so that replays stay out. */
  readonly #floors = new Map<string, { generation: number; atMs: number }>();
  #last: StreamsStatus | undefined;
  #next: InstanceRecord | null | undefined;
  #publishing: Promise<void> | undefined;
  #republish: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #outage: BrokerOutage | undefined;

  constructor(options: InstanceDirectoryOptions) {
    const { config, logger } = options;
    if (!config.clusterKeys)
      throw new Error('the instance directory needs config.clusterKeys (requireClusterKeys at start-up)');
    this.#config = config;
    this.#keys = config.clusterKeys;
    this.#log = logger.child({ component: 'instances' });
    this.#url = options.url;
    this.#localGeneration = options.localGeneration;
    this.#topic = instancesTopic(config.appId);
    this.#rejected = options.metrics.counter({
      name: 'bankstream_directory_records_rejected_total',
      help: 'Instance directory records ignored: unsigned, bad MAC, URL outside INSTANCE_URL_ALLOW, malformed or replayed',
      labelNames: ['reason'],
    });
    this.#producer = createIdempotentProducer({
      bootstrapBrokers: config.kafkaBrokers,
      security: kafkaConnectionOptions(config.kafkaSecurity, config.kafkaBrokers),
      clientId: `${config.appId}-${config.instanceId}-instances`,
      requestTimeoutMs: 15_000,
      produceTimeoutMs: 10_000,
      retries: 3,
      retryDelayMs: 100,
    });
    const outage = options.brokerHealth?.outage('instances', this.#log);
    this.#outage = outage;
    this.#tail = new TopicTail({
      config,
      logger,
      purpose: 'instances',
      topics: [this.#topic],
      from: 'beginning',
      onRecords: (records) => this.#onRecords(records),
      ...(outage ? { outage } : {}),
    });
  }

  /** Starts tailing; resolves when the records published before are read. */
  async start(): Promise<void> {
    await this.#tail.start();
    await this.#tail.caughtUp();
    this.#republish = setInterval(() => this.#last && this.publish(this.#last), DIRECTORY_REPUBLISH_MS);
    this.#republish.unref();
  }

  /** Publishes this instance's claim for a streams status (latest wins; retried until sent or superseded). */
  publish(status: StreamsStatus): void {
    if (this.#closed) return;
    this.#last = status;
    const running = status.state === 'RUNNING' ? status.running : [];
    this.#enqueue({
      instanceId: this.#config.instanceId,
      url: this.#url(),
      generation: status.generationId ?? -1,
      partitions: running,
      state: status.state,
      standby: status.standby,
      at: new Date().toISOString(),
    });
  }

  /** Instances (other than this one) keeping a standby of a partition: where a stale read can go. */
  standbyHoldersOf(partition: number): Owner[] {
    const maxGeneration = this.#localGeneration();
    if (maxGeneration === undefined) return [];
    // Believed up to our own group generation, as claims are (ownerAmong).
    return this.instances()
      .filter(
        (r) =>
          r.instanceId !== this.#config.instanceId &&
          r.generation <= maxGeneration &&
          (r.standby ?? []).includes(partition),
      )
      .map((r) => ({ instanceId: r.instanceId, url: r.url }));
  }

  /** The instance running a partition, or undefined while it is restoring, unowned or moving. */
  ownerOf(partition: number): Owner | undefined {
    return ownerAmong(this.#instances.values(), partition, this.#localGeneration());
  }

  /** The verified records (the routing table shown on the management surface). */
  instances(): InstanceRecord[] {
    return [...this.#instances.values()].sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  }

  /** Removes this instance's record (a tombstone), so nobody routes to it, then stops. */
  async close(): Promise<void> {
    clearInterval(this.#republish);
    this.#enqueue(null);
    this.#closed = true;
    // Bounded: with Kafka down the tombstone cannot be sent, and the next owner's newer claim wins anyway.
    await Promise.race([
      this.#publishing,
      new Promise((resolve) => setTimeout(resolve, CLOSE_PUBLISH_TIMEOUT_MS).unref()),
    ]);
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
        if (this.#outage && isBrokerUnavailable(error))
          this.#outage.failed('publish instance record', error, backoffMs);
        else this.#log.warn({ err: error, retryInMs: backoffMs }, 'publishing the instance record failed');
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
        backoffMs = Math.min(backoffMs * 2, PUBLISH_BACKOFF_MAX_MS);
      }
    }
  }

  async #send(record: InstanceRecord | null): Promise<void> {
    const id = this.#config.instanceId;
    const key = Buffer.from(id, 'utf8');
    const message = record
      ? { topic: this.#topic, key, value: signedRecordValue(this.#keys, record) }
      : {
          topic: this.#topic,
          key,
          headers: new Map([
            [
              Buffer.from(TOMBSTONE_MAC_HEADER, 'utf8'),
              signedTombstoneHeader(this.#keys, id, new Date().toISOString()),
            ],
          ]),
        };
    await this.#producer.send({ messages: [message] });
    this.#log.debug({ record }, 'instance record published');
  }

  #onRecords(records: FetchedRecord[]): void {
    for (const record of records) {
      const instanceId = record.key?.toString('utf8');
      if (!instanceId) continue;
      const verdict = record.value
        ? this.#checkRecord(instanceId, record.value)
        : this.#checkTombstone(instanceId, record.headers[TOMBSTONE_MAC_HEADER]);
      if (verdict.ok) continue;
      this.#rejected.inc({ reason: verdict.reason });
      this.#warn(verdict.reason, instanceId, record.offset);
    }
  }

  /** One warning per reason per REJECT_LOG_INTERVAL_MS (with the count left out): a flood of forged records must not flood the log. */
  #warn(reason: RejectReason, instanceId: string, offset: bigint): void {
    const now = Date.now();
    const last = this.#logged.get(reason);
    if (last && now - last.atMs < REJECT_LOG_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    this.#logged.set(reason, { atMs: now, suppressed: 0 });
    this.#log.warn(
      { instanceId: instanceId.slice(0, 200), offset: String(offset), reason, notLoggedBefore: last?.suppressed ?? 0 },
      'instance directory record ignored',
    );
  }

  #checkRecord(instanceId: string, value: Buffer): { ok: true } | { ok: false; reason: RejectReason } {
    const opened = openRecordValue(this.#keys, instanceId, value);
    if (!opened.ok) return opened;
    const record = opened.record;
    if (!instanceUrlAllowed(record.url, this.#config.instanceUrlAllow)) return { ok: false, reason: 'url_not_allowed' };
    const atMs = Date.parse(record.at);
    const floor = this.#floors.get(instanceId);
    if (floor && !newerThan(record, atMs, floor)) return { ok: false, reason: 'replayed' };
    this.#floors.set(instanceId, {
      generation: Math.max(record.generation, floor?.generation ?? -1),
      atMs: Math.max(atMs, floor?.atMs ?? 0),
    });
    this.#instances.set(instanceId, record);
    return { ok: true };
  }

  #checkTombstone(instanceId: string, header: Buffer | undefined): { ok: true } | { ok: false; reason: RejectReason } {
    const at = openTombstoneHeader(this.#keys, instanceId, header);
    if (!at.ok) return at;
    const floor = this.#floors.get(instanceId);
    if (floor && at.atMs < floor.atMs) return { ok: false, reason: 'replayed' };
    this.#floors.set(instanceId, { generation: floor?.generation ?? -1, atMs: Math.max(at.atMs, floor?.atMs ?? 0) });
    this.#instances.delete(instanceId);
    return { ok: true };
  }
}
