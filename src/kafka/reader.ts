// The one way bankstream builds a committed-records reader: a consumer (connections, metadata, group
// membership when asked for) and the Fetcher that reads through it at explicit positions. The engine,
// restore, standbys, the Postgres sink, reconcile and the API's tails all read this way, so every one
// of them applies the same read_committed rule and the same client options.
import { Consumer, type GroupOptions } from '@platformatic/kafka';
import type { KafkaSecurityOptions } from './clients.ts';
import { Fetcher, type FetcherOptions, READ_COMMITTED } from './fetcher.ts';

/** Group membership, for a reader that joins its group (the engine, the sink); others never join. */
export interface ReaderGroupConfig {
  /** Static membership (KIP-345): the member's group.instance.id; a dynamic member without it. */
  groupInstanceId?: string;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  rebalanceTimeoutMs: number;
  /** Assignment protocols offered in JoinGroup (default: the client's). */
  protocols?: GroupOptions['protocols'];
  /** This member's metadata in JoinGroup (the engine's member info). */
  protocolsMetadata?: GroupOptions['protocolsMetadata'];
  /** Runs on the group leader to assign partitions. */
  partitionAssigner?: GroupOptions['partitionAssigner'];
}

export interface ReaderConfig {
  clientId: string;
  /**
   * Required by the client even for a reader that never joins. It is the group whose committed offsets
   * fetchStableOffsets reads through this consumer.
   */
  groupId: string;
  bootstrapBrokers: readonly string[];
  security?: KafkaSecurityOptions;
  /** How long a request waits for the broker's answer (default 30 000 ms). */
  requestTimeoutMs?: number;
  /** The client's own retries of a failed request (default 3), `retryDelayMs` apart (default 250 ms). */
  retries?: number;
  retryDelayMs?: number;
  group?: ReaderGroupConfig;
  fetch: FetcherOptions;
}

export interface Reader {
  readonly consumer: Consumer;
  readonly fetcher: Fetcher;
}

/**
 * A consumer that never commits on its own (offsets go into a transaction, or into Postgres) and its
 * Fetcher. Not strict: the client's option schema refuses a numeric isolation level in listOffsets.
 */
export function createReader(config: ReaderConfig): Reader {
  checkFetchOptions(config.fetch);
  const group = config.group;
  const consumer = new Consumer({
    clientId: config.clientId,
    groupId: config.groupId,
    bootstrapBrokers: [...config.bootstrapBrokers],
    ...(config.security ?? {}),
    autocommit: false,
    isolationLevel: READ_COMMITTED,
    timeout: config.requestTimeoutMs ?? 30_000,
    retries: config.retries ?? 3,
    retryDelay: config.retryDelayMs ?? 250,
    strict: false,
    ...(group
      ? {
          ...(group.groupInstanceId !== undefined ? { groupInstanceId: group.groupInstanceId } : {}),
          sessionTimeout: group.sessionTimeoutMs,
          heartbeatInterval: group.heartbeatIntervalMs,
          rebalanceTimeout: group.rebalanceTimeoutMs,
          ...(group.protocols ? { protocols: group.protocols } : {}),
          ...(group.protocolsMetadata ? { protocolsMetadata: group.protocolsMetadata } : {}),
          ...(group.partitionAssigner ? { partitionAssigner: group.partitionAssigner } : {}),
        }
      : {}),
  });
  return { consumer, fetcher: new Fetcher(consumer, config.fetch) };
}

function checkFetchOptions(options: FetcherOptions): void {
  for (const [name, value] of Object.entries(options)) {
    if (!Number.isSafeInteger(value) || value < 0)
      throw new RangeError(`fetch option ${name} must be a non-negative integer, got ${String(value)}`);
  }
  if (options.partitionMaxBytes > options.maxBytes)
    throw new RangeError('fetch option partitionMaxBytes must not exceed maxBytes');
}
