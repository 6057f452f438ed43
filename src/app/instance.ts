// The composition root of one bankstream instance: the bank topology on the exactly-once engine, the
// Postgres sink (optional) and the HTTP API (optional), started and stopped in order.
import type { Logger } from 'pino';
import { buildBankTopology } from '../bank/topology.ts';
import { type Config, requireClusterKeys } from '../config/config.ts';
import { Metrics } from '../metrics/metrics.ts';
import { ApiServer } from '../http/server.ts';
import { kafkaConnectionOptions } from '../kafka/security.ts';
import { KafkaStreams, type KafkaStreamsOptions } from '../runtime/kafka-streams.ts';
import { PostgresSink } from '../sinks/postgres-sink.ts';

export interface InstanceOptions {
  config: Config;
  logger: Logger;
  /** Run the Postgres sink inside this process (default true; `bankstream sink` runs it alone). */
  sink?: boolean;
  /** Serve the HTTP API (default false here, so that embedding tests stay headless; `bankstream start` turns it on). */
  http?: boolean;
  /** Aborted to stop while starting (the start waits for the broker for as long as it is down). */
  signal?: AbortSignal;
}

export interface Instance {
  readonly config: Config;
  readonly streams: KafkaStreams;
  readonly sink: PostgresSink | undefined;
  readonly http: ApiServer | undefined;
  readonly metrics: Metrics;
  /** Stops everything: the engine commits what it processed, the sink writes its pending batch. */
  close(): Promise<void>;
}

export function bankTopology(config: Config, metrics?: Metrics) {
  const observe = metrics === undefined ? {} : { onExpiryStep: metrics.observeExpiryStep.bind(metrics) };
  return buildBankTopology({
    topics: config.topics,
    dedupRetentionMs: config.dedupRetentionMs,
    expiry: { budgetMs: config.expiryStepBudgetMs },
    processingExceptionHandler: config.processingExceptionHandler,
    ...observe,
  });
}

/**
 * The bank topology on the exactly-once engine, configured from `config` (not started). Requires the
 * cluster keys (CLUSTER_SECRET): every leg and changelog record is signed and verified with them.
 */
export function createBankStreams(
  config: Config,
  logger: Logger,
  onCommit?: KafkaStreamsOptions['onCommit'],
  overrides: Pick<KafkaStreamsOptions, 'internalRecordMacs' | 'onProcessingError'> = {},
  metrics?: Metrics,
): KafkaStreams {
  const clusterKeys = requireClusterKeys(config.clusterKeys, 'the processor');
  return new KafkaStreams(bankTopology(config, metrics), {
    applicationId: config.appId,
    instanceId: config.instanceId,
    brokers: config.kafkaBrokers,
    stateDir: config.stateDir,
    commitIntervalMs: config.commitIntervalMs,
    batchRecordsMax: config.batchRecordsMax,
    commitWhenCaughtUp: config.commitWhenCaughtUp,
    fetchMaxWaitMs: config.fetchMaxWaitMs,
    fetchMinBytes: config.fetchMinBytes,
    standbyReplicas: config.standbyReplicas,
    staticMembership: config.membership.staticMembership,
    leaveGroupOnClose: config.membership.leaveGroupOnClose,
    sessionTimeoutMs: config.membership.sessionTimeoutMs,
    stateCleanupDelayMs: config.stateCleanupDelayMs,
    acceptableRecoveryLag: config.acceptableRecoveryLagRecords,
    recoveryLagMeasureTimeoutMs: config.recoveryLagMeasureTimeoutMs,
    ...(metrics
      ? {
          onStateCleanup: (deleted: string[]) => metrics.observeStateCleanup(deleted),
          onFetchRound: (info: { records: number }) => metrics.observeFetchRound(info),
        }
      : {}),
    offsetReset: config.offsetReset,
    connection: kafkaConnectionOptions(config.kafkaSecurity, config.kafkaBrokers),
    logger,
    clusterKeys,
    recordAuth: config.recordAuth,
    ...overrides,
    ...(onCommit ? { onCommit } : {}),
  });
}

export async function startInstance(options: InstanceOptions): Promise<Instance> {
  const { config, logger } = options;
  const metrics = new Metrics({ app: config.appId, instance: config.instanceId });
  const streams = createBankStreams(
    config,
    logger,
    (info) => metrics.observeCommit(info),
    { onProcessingError: (info) => metrics.observeProcessingError(info) },
    metrics,
  );
  metrics.bindStreams(streams);
  metrics.bindBrokerHealth(streams.brokerHealth);
  // The sink reports its broker outages to the same place as the engine (/readyz, metrics).
  const sink =
    (options.sink ?? true) ? new PostgresSink({ config, logger, brokerHealth: streams.brokerHealth }) : undefined;
  // Stopping while the start still waits for the broker (SIGTERM during an outage) ends the waits:
  // start() then rejects with StoppedError.
  const onAbort = () => void Promise.allSettled([streams.close(), sink?.stop()]);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let http: ApiServer | undefined;
  try {
    await streams.start();
    if (sink) {
      await sink.start();
      metrics.bindSink(sink);
    }
    if (options.http ?? false)
      http = await ApiServer.start({
        config,
        logger,
        streams,
        sink,
        metrics,
        ...(options.signal ? { signal: options.signal } : {}),
      });
  } catch (error) {
    await Promise.allSettled([streams.close(), sink?.stop()]);
    throw error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      let first: unknown;
      // The API first: it withdraws this instance from routing before its tasks go away.
      for (const stop of [() => http?.close(), () => streams.close(), () => sink?.stop()]) {
        try {
          await stop();
        } catch (error) {
          first ??= error;
        }
      }
      if (first) throw first;
    })());
  return { config, streams, sink, http, metrics, close };
}
