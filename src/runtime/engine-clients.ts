// The Kafka clients of one engine, built in one place: the transactional producer, the group consumer
// with its Fetcher (the processing loop and the restore of active tasks), and the standbys' own consumer
// with its Fetcher; both readers come from src/kafka's one reader factory (createReader).
import type { Consumer } from '@platformatic/kafka';
import { createTransactionalProducer, type KafkaSecurityOptions } from '../kafka/clients.ts';
import type { BankstreamProducer } from '../kafka/producer.ts';
import { createReader } from '../kafka/reader.ts';
import { createCopartitionedAssigner, LEGACY_PROTOCOL_NAME, PROTOCOL_NAME } from './assignor.ts';
import type { ResolvedOptions } from './engine-options.ts';
import type { GroupMembership } from './membership.ts';
import type { Fetcher } from '../kafka/fetcher.ts';

export interface EngineClients {
  producer: BankstreamProducer;
  consumer: Consumer;
  fetcher: Fetcher;
  /**
   * The standbys fetch with their own client, so with their own connections: a broker answers one request
   * per connection at a time, and a standby's fetch waiting for changelog data would hold up the
   * processing loop's fetches on a shared connection. Never joins the group: it only fetches changelogs
   * and lists their offsets.
   */
  standbyConsumer: Consumer;
  standbyFetcher: Fetcher;
}

const FETCH_MAX_BYTES = 16 * 1024 * 1024;
const FETCH_PARTITION_MAX_BYTES = 2 * 1024 * 1024;

/** `memberInfo` is this member's subscription user data, asked for at every JoinGroup (see assignor.ts). */
export function createEngineClients(
  options: ResolvedOptions,
  memberInfo: () => Buffer,
  membership: GroupMembership,
): EngineClients {
  const { applicationId, instanceId, brokers, connection } = options;
  const producer = createTransactionalProducer({
    bootstrapBrokers: brokers,
    clientId: `${applicationId}-${instanceId}-producer`,
    transactionalId: `${applicationId}-${instanceId}`,
    transactionTimeoutMs: options.transactionTimeoutMs,
    requestTimeoutMs: options.transactionTimeoutMs * 3,
    // CONCURRENT_TRANSACTIONS answers AddPartitionsToTxn while the broker still writes the previous
    // transaction's markers: retried after 1, 2, 3, 5, 8 and 13 ms, then every 20 ms (the Java client's
    // delay), for up to ~2 s (clients.ts, CONCURRENT_TRANSACTIONS_DELAYS_MS).
    retries: 100,
    retryDelayMs: 20,
    compression: options.compression,
    ...(connection ? { security: connection as KafkaSecurityOptions } : {}),
  });
  // The client options the engine always had, explicit: requests wait for as long as a transaction may
  // take, and the client retries a request 3 times, 1 s apart (its defaults), before the loop sees it.
  const reader = {
    bootstrapBrokers: brokers,
    ...(connection ? { security: connection as KafkaSecurityOptions } : {}),
    requestTimeoutMs: options.transactionTimeoutMs,
    retries: 3,
    retryDelayMs: 1000,
  };
  const { consumer, fetcher } = createReader({
    ...reader,
    clientId: `${applicationId}-${instanceId}-consumer`,
    groupId: applicationId,
    group: {
      ...membership.consumerOptions(),
      sessionTimeoutMs: options.sessionTimeoutMs,
      rebalanceTimeoutMs: Math.max(30_000, options.sessionTimeoutMs),
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      // Each member tells the leader what it runs, keeps warm and has on disk (see assignor.ts). The
      // previous protocol name second: during a rolling upgrade the group agrees on it until every member
      // speaks the new one (the leader always plans with this assignor's code, whichever name is chosen).
      protocols: [
        { name: PROTOCOL_NAME, version: 1 },
        { name: LEGACY_PROTOCOL_NAME, version: 1 },
      ],
      protocolsMetadata: memberInfo,
      partitionAssigner: createCopartitionedAssigner(options.standbyReplicas),
    },
    fetch: {
      maxWaitMs: options.fetchMaxWaitMs,
      minBytes: options.fetchMinBytes,
      maxBytes: FETCH_MAX_BYTES,
      partitionMaxBytes: FETCH_PARTITION_MAX_BYTES,
    },
  });
  const standby = createReader({
    ...reader,
    clientId: `${applicationId}-${instanceId}-standby`,
    groupId: `${applicationId}-${instanceId}-standby`,
    // Waits longer on a quiet changelog than the processing loop does.
    fetch: { maxWaitMs: 250, minBytes: 1, maxBytes: FETCH_MAX_BYTES, partitionMaxBytes: FETCH_PARTITION_MAX_BYTES },
  });
  return { producer, consumer, fetcher, standbyConsumer: standby.consumer, standbyFetcher: standby.fetcher };
}
