// Where bankstream builds Kafka clients (with reader.ts: createReader, the consumer + Fetcher pair
// that every committed-records reader uses). Every option the library reads is set here
// explicitly (no reliance on @platformatic/kafka defaults, several of which do not suit
// exactly-once processing: the non-Java partitioner, autocommit on, a 5 s fetch wait, 0/0 as
// InitProducerId's producer id/epoch, AddPartitionsToTxn v5).
//
//   createAdmin                  topics, groups, ACLs
//   createTransactionalProducer  EOS producer: idempotent, transactional.id, Java partitioner
//   createIdempotentProducer     non-transactional keyed writes (load generator, upstream tools)
//   createReadCommittedConsumer  read_committed (with the correct aborted-transaction filter), no autocommit
import {
  Admin,
  FetchIsolationLevels,
  type BaseOptions,
  type GroupProtocolSubscription,
  type RetryDelayGetter,
  type SASLOptions,
} from '@platformatic/kafka';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { kafkaErrorIds } from './errors.ts';
import { javaCompatiblePartitioner } from './partitioner.ts';
import { BankstreamProducer } from './producer.ts';
import { ReadCommittedConsumer } from './read-committed.ts';

/** Connection security, passed through to the client as is (TLS and/or SASL). */
export interface KafkaSecurityOptions {
  tls?: TlsConnectionOptions;
  /** SNI server name; `true` uses the broker host. */
  tlsServerName?: string | boolean;
  sasl?: SASLOptions;
}

export interface KafkaClientConfig {
  /** "host:port" strings. */
  bootstrapBrokers: string[];
  clientId: string;
  security?: KafkaSecurityOptions;
  /** TCP/TLS connect timeout (default 5 000 ms). */
  connectTimeoutMs?: number;
  /** How long to wait for any broker response before failing the request (default 30 000 ms). */
  requestTimeoutMs?: number;
  /** Client-level retries of retriable errors (default 3). */
  retries?: number;
  /** Pause between those retries (default 250 ms). */
  retryDelayMs?: number;
  /** Refresh cached cluster metadata after this long (default 10 000 ms). */
  metadataMaxAgeMs?: number;
  /** prom-client compatible registry passthrough (library metrics). */
  metrics?: BaseOptions['metrics'];
}

export interface TransactionalProducerConfig extends KafkaClientConfig {
  /** Stable across restarts: `<appId>-<instanceId>`. */
  transactionalId: string;
  /**
   * transaction.timeout.ms sent in InitProducerId (default 10 000 ms, Kafka Streams' EOS default).
   * NOTE: the client uses its single `timeout` option both for this and as the Produce request's
   * broker-side acks timeout; keep it below requestTimeoutMs.
   */
  transactionTimeoutMs?: number;
  compression?: 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';
}

export interface IdempotentProducerConfig extends KafkaClientConfig {
  /** Broker-side acks timeout of Produce requests (default 10 000 ms). */
  produceTimeoutMs?: number;
  compression?: 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';
}

export interface ReadCommittedConsumerConfig extends KafkaClientConfig {
  groupId: string;
  /** Static membership id (KIP-345), optional. */
  groupInstanceId?: string;
  /** default 45 000 ms (Java default). */
  sessionTimeoutMs?: number;
  /** default 60 000 ms; must be >= sessionTimeoutMs. */
  rebalanceTimeoutMs?: number;
  /** default 3 000 ms. */
  heartbeatIntervalMs?: number;
  /** Longest time the broker holds a fetch with no data (default 500 ms, Java fetch.max.wait.ms). */
  maxWaitTimeMs?: number;
  /** default 1 byte. */
  minBytes?: number;
  /** Per fetch response (default 52 428 800, Java fetch.max.bytes). */
  maxBytes?: number;
  /** Per partition (default 1 048 576, Java max.partition.fetch.bytes). */
  maxBytesPerPartition?: number;
  /** Messages buffered by a consume() stream (default 1 024). */
  highWaterMark?: number;
  /** Assignment protocols offered in JoinGroup (default roundrobin v1). */
  protocols?: GroupProtocolSubscription[];
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isFinite(resolved) || resolved < 0) {
    throw new RangeError(`${name} must be a non-negative number, got ${String(value)}`);
  }
  return resolved;
}

/** The base (connection) options shared by every client, all explicit. */
export function baseClientOptions(config: KafkaClientConfig): BaseOptions {
  if (config.bootstrapBrokers.length === 0) {
    throw new Error('bootstrapBrokers must list at least one "host:port"');
  }
  if (!/^\S+$/.test(config.clientId)) {
    throw new Error(`clientId must be a non-empty string without spaces, got "${config.clientId}"`);
  }
  const options: BaseOptions = {
    bootstrapBrokers: [...config.bootstrapBrokers],
    clientId: config.clientId,
    connectTimeout: positive('connectTimeoutMs', config.connectTimeoutMs, 5_000),
    requestTimeout: positive('requestTimeoutMs', config.requestTimeoutMs, 30_000),
    retries: positive('retries', config.retries, 3),
    retryDelay: positive('retryDelayMs', config.retryDelayMs, 250),
    metadataMaxAge: positive('metadataMaxAgeMs', config.metadataMaxAgeMs, 10_000),
    autocreateTopics: false,
  };
  const security = config.security;
  if (security?.tls !== undefined) {
    options.tls = security.tls;
  }
  if (security?.tlsServerName !== undefined) {
    options.tlsServerName = security.tlsServerName;
  }
  if (security?.sasl !== undefined) {
    options.sasl = security.sasl;
  }
  if (config.metrics !== undefined) {
    options.metrics = config.metrics;
  }
  return options;
}

export function createAdmin(config: KafkaClientConfig): Admin {
  return new Admin({ ...baseClientOptions(config), strict: true });
}

/** What both producers share: idempotent (acks=all, one in-flight request), Java-compatible partitioner. */
function idempotentOptions(config: IdempotentProducerConfig | TransactionalProducerConfig) {
  return {
    // Producer-side option validation runs on every send; keep the hot path lean.
    strict: false,
    idempotent: true,
    acks: -1,
    maxInflights: 1,
    compression: config.compression ?? 'none',
    partitioner: javaCompatiblePartitioner,
    autocreateTopics: false,
    repeatOnStaleMetadata: true,
  } as const;
}

/**
 * The exactly-once producer: idempotent (acks=all, one in-flight request per connection),
 * transactional with a stable transactional.id, Java-compatible key partitioner.
 * Call `beginTransaction()` for each commit cycle; see src/kafka/producer.ts for the guards.
 */
export function createTransactionalProducer(config: TransactionalProducerConfig): BankstreamProducer {
  if (!/^\S+$/.test(config.transactionalId)) {
    throw new Error(`transactionalId must be a non-empty string without spaces, got "${config.transactionalId}"`);
  }
  const transactionTimeoutMs = positive('transactionTimeoutMs', config.transactionTimeoutMs, 10_000);
  const base = baseClientOptions(config);
  if (transactionTimeoutMs >= (base.requestTimeout ?? 0)) {
    throw new RangeError(
      'transactionTimeoutMs must be below requestTimeoutMs (the client also uses it as the Produce acks timeout)',
    );
  }
  return new BankstreamProducer({
    ...base,
    retryDelay: transactionalRetryDelay(base.retryDelay as number),
    ...idempotentOptions(config),
    transactionalId: config.transactionalId,
    timeout: transactionTimeoutMs,
  });
}

/**
 * The delays before the first retries of a request the transaction coordinator answered with
 * CONCURRENT_TRANSACTIONS: it is still completing the previous transaction (writing its markers), which
 * took 3–10 ms on this machine's one broker. A commit that begins right after the previous one ends, as
 * the engine's do under load, met it every time, and a fixed 20 ms delay made each such transaction
 * ~24 ms; these make it ~10 ms (`docs/notes/producer.md`). Past them, the client's delay.
 */
export const CONCURRENT_TRANSACTIONS_DELAYS_MS: readonly number[] = [1, 2, 3, 5, 8, 13];

/** The client's retry delay, shortened by CONCURRENT_TRANSACTIONS_DELAYS_MS for that one answer. */
export function transactionalRetryDelay(delayMs: number): RetryDelayGetter {
  return (_client, _operationId, attempt, _retries, error) => {
    if (!kafkaErrorIds(error).has('CONCURRENT_TRANSACTIONS')) return delayMs;
    const scheduled = CONCURRENT_TRANSACTIONS_DELAYS_MS[attempt - 1];
    return scheduled === undefined || scheduled > delayMs ? delayMs : scheduled;
  };
}

/** Idempotent, non-transactional producer with the Java-compatible partitioner. */
export function createIdempotentProducer(config: IdempotentProducerConfig): BankstreamProducer {
  return new BankstreamProducer({
    ...baseClientOptions(config),
    ...idempotentOptions(config),
    timeout: positive('produceTimeoutMs', config.produceTimeoutMs, 10_000),
  });
}

/**
 * A group consumer that reads committed data only (with bankstream's correct aborted-transaction
 * filter) and never commits offsets on its own: offsets go into the producer's transaction
 * (sendOffsetsToTransaction) or, for the sink, into Postgres.
 */
export function createReadCommittedConsumer(config: ReadCommittedConsumerConfig): ReadCommittedConsumer {
  const sessionTimeout = positive('sessionTimeoutMs', config.sessionTimeoutMs, 45_000);
  const rebalanceTimeout = positive('rebalanceTimeoutMs', config.rebalanceTimeoutMs, 60_000);
  const heartbeatInterval = positive('heartbeatIntervalMs', config.heartbeatIntervalMs, 3_000);
  if (rebalanceTimeout < sessionTimeout) {
    throw new RangeError('rebalanceTimeoutMs must be >= sessionTimeoutMs');
  }
  if (heartbeatInterval >= sessionTimeout) {
    throw new RangeError('heartbeatIntervalMs must be below sessionTimeoutMs');
  }
  return new ReadCommittedConsumer({
    ...baseClientOptions(config),
    // Not strict: the library's listOffsets schema wants isolationLevel as a STRING while its
    // protocol code (and FetchIsolationLevels) use numbers, so strict mode rejects a valid
    // read_committed listOffsets. Our own config is validated above instead.
    strict: false,
    groupId: config.groupId,
    ...(config.groupInstanceId === undefined ? {} : { groupInstanceId: config.groupInstanceId }),
    sessionTimeout,
    rebalanceTimeout,
    heartbeatInterval,
    protocols: config.protocols ?? [{ name: 'roundrobin', version: 1 }],
    autocommit: false,
    isolationLevel: FetchIsolationLevels.READ_COMMITTED,
    maxWaitTime: positive('maxWaitTimeMs', config.maxWaitTimeMs, 500),
    minBytes: positive('minBytes', config.minBytes, 1),
    maxBytes: positive('maxBytes', config.maxBytes, 52_428_800),
    maxBytesPerPartition: positive('maxBytesPerPartition', config.maxBytesPerPartition, 1_048_576),
    highWaterMark: positive('highWaterMark', config.highWaterMark, 1_024),
  });
}
