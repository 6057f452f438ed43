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
import { type ClusterKeys, signParts, verifyParts } from '../config/cluster-key.ts';
import { type Config, instanceUrlAllowed, instancesTopic } from '../config/config.ts';
import { createIdempotentProducer } from '../kafka/clients.ts';
import { type BrokerHealth, type BrokerOutage, isBrokerUnavailable } from '../kafka/retry.ts';
import { kafkaConnectionOptions } from '../kafka/security.ts';
import type { BankstreamProducer } from '../kafka/producer.ts';
import type { StreamsStatus } from '../runtime/kafka-streams.ts';
import type { FetchedRecord } from '../kafka/fetcher.ts';
import type { Metrics } from './metrics.ts';
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

/** Why a directory record was ignored (the label of the rejection counter). */
export type RejectReason = 'unsigned' | 'unknown_key' | 'bad_mac' | 'malformed' | 'url_not_allowed' | 'replayed';

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

/** Header of a tombstone: `<keyId>.<mac base64url>.<at>`; a record's MAC travels in its value's envelope. */
export const TOMBSTONE_MAC_HEADER = 'bankstream.directory-mac';
const PUBLISH_BACKOFF_MIN_MS = 100;
const PUBLISH_BACKOFF_MAX_MS = 5000;
const CLOSE_PUBLISH_TIMEOUT_MS = 3000;
/** Republication of this instance's record: heals a deleted or replayed record (a topic writer's DoS). */
const DIRECTORY_REPUBLISH_MS = 30_000;
const RECORD_BYTES_MAX = 64 * 1024;
const REJECT_LOG_INTERVAL_MS = 10_000;
const INSTANCE_ID = /^[A-Za-z0-9._-]{1,200}$/;
const PARTITIONS_MAX = 10_000;

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

/**
 * Whether a record may replace what is held for its instance. The floor is the highest generation and the
 * latest time accepted so far (kept across tombstones), so a replayed record, always older on both, stays out:
 *   - a later generation: a new claim (its `at` may trail on a host whose clock is behind);
 *   - the same generation, not older: a status change within it;
 *   - no claim at all (a restarted instance before its first assignment, generation -1), not older.
 */
export function newerThan(record: InstanceRecord, atMs: number, floor: { generation: number; atMs: number }): boolean {
  if (record.generation > floor.generation) return true;
  if (atMs < floor.atMs) return false;
  return record.generation === floor.generation || record.partitions.length === 0;
}

/**
 * The claim with the highest generation wins, among claims of generations up to `maxGeneration` (the one
 * this instance is assigned in); two claims in the same generation (one of them stale, e.g. an instance that
 * crashed and came back) mean the partition is moving: nobody is named.
 */
export function ownerAmong(
  records: Iterable<InstanceRecord>,
  partition: number,
  maxGeneration: number | undefined,
): Owner | undefined {
  if (maxGeneration === undefined) return undefined;
  let best: InstanceRecord | undefined;
  let tie = false;
  for (const record of records) {
    if (record.generation > maxGeneration || !record.partitions.includes(partition)) continue;
    if (!best || record.generation > best.generation) {
      best = record;
      tie = false;
    } else if (record.generation === best.generation) tie = true;
  }
  return best && !tie ? { instanceId: best.instanceId, url: best.url } : undefined;
}

/** The value of a directory record: the record's JSON as a string, and a MAC over the key and those exact bytes. */
export function signedRecordValue(keys: ClusterKeys, record: InstanceRecord): Buffer {
  const json = JSON.stringify(record);
  const { keyId, mac } = signParts(keys, 'directory', [record.instanceId, json]);
  return Buffer.from(JSON.stringify({ v: 1, record: json, keyId, mac: mac.toString('base64url') }), 'utf8');
}

/** Verifies and parses a directory record value of the instance `key`. */
export function openRecordValue(
  keys: ClusterKeys,
  key: string,
  value: Buffer,
): { ok: true; record: InstanceRecord } | { ok: false; reason: RejectReason } {
  if (value.length > RECORD_BYTES_MAX) return { ok: false, reason: 'malformed' };
  let envelope: { v?: unknown; record?: unknown; keyId?: unknown; mac?: unknown };
  try {
    envelope = JSON.parse(value.toString('utf8')) as typeof envelope;
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (typeof envelope !== 'object' || envelope === null || typeof envelope.record !== 'string')
    return { ok: false, reason: 'unsigned' };
  if (typeof envelope.keyId !== 'string' || typeof envelope.mac !== 'string') return { ok: false, reason: 'unsigned' };
  const mac = Buffer.from(envelope.mac, 'base64url');
  if (mac.toString('base64url') !== envelope.mac) return { ok: false, reason: 'bad_mac' };
  const check = verifyParts(keys, 'directory', [key, envelope.record], envelope.keyId, mac);
  if (!check.ok)
    return {
      ok: false,
      reason: check.reason === 'unknown_key' ? 'unknown_key' : check.reason === 'missing_mac' ? 'unsigned' : 'bad_mac',
    };
  const record = parseRecord(Buffer.from(envelope.record, 'utf8'));
  // Signed by an instance but naming another one: a bug or a copied record, either way not this key's claim.
  if (!record || record.instanceId !== key) return { ok: false, reason: 'malformed' };
  return { ok: true, record };
}

export function signedTombstoneHeader(keys: ClusterKeys, instanceId: string, at: string): Buffer {
  const { keyId, mac } = signParts(keys, 'directory', [instanceId, 'tombstone', at]);
  return Buffer.from(`${keyId}.${mac.toString('base64url')}.${at}`, 'utf8');
}

function openTombstoneHeader(
  keys: ClusterKeys,
  instanceId: string,
  header: Buffer | undefined,
): { ok: true; atMs: number } | { ok: false; reason: RejectReason } {
  if (!header) return { ok: false, reason: 'unsigned' };
  const [keyId, mac, at, extra] = header.toString('utf8').split('.');
  if (keyId === undefined || mac === undefined || at === undefined || extra !== undefined)
    return { ok: false, reason: 'malformed' };
  const macBytes = Buffer.from(mac, 'base64url');
  if (macBytes.toString('base64url') !== mac) return { ok: false, reason: 'bad_mac' };
  const check = verifyParts(keys, 'directory', [instanceId, 'tombstone', at], keyId, macBytes);
  if (!check.ok) return { ok: false, reason: check.reason === 'unknown_key' ? 'unknown_key' : 'bad_mac' };
  const atMs = Date.parse(at);
  return Number.isFinite(atMs) ? { ok: true, atMs } : { ok: false, reason: 'malformed' };
}

/** The record's fields, each checked: ids, partitions and times as the publisher writes them. */
export function parseRecord(value: Buffer): InstanceRecord | undefined {
  try {
    const v = JSON.parse(value.toString('utf8')) as Partial<InstanceRecord>;
    const partitionList = (list: unknown) =>
      Array.isArray(list) &&
      list.length <= PARTITIONS_MAX &&
      list.every((p) => Number.isSafeInteger(p) && p >= 0 && p < PARTITIONS_MAX);
    const valid =
      typeof v.instanceId === 'string' &&
      INSTANCE_ID.test(v.instanceId) &&
      typeof v.url === 'string' &&
      /^https?:\/\//.test(v.url) &&
      Number.isSafeInteger(v.generation) &&
      v.generation! >= -1 &&
      partitionList(v.partitions) &&
      typeof v.state === 'string' &&
      typeof v.at === 'string' &&
      Number.isFinite(Date.parse(v.at)) &&
      (v.standby === undefined || partitionList(v.standby));
    return valid ? (v as InstanceRecord) : undefined;
  } catch {
    return undefined;
  }
}
