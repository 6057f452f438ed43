// The composition root of one bankstream instance: the bank topology on the exactly-once engine, the
// Postgres sink (optional) and the HTTP API (optional), started and stopped in order.
import { type Logger } from 'pino';
import { buildBankTopology } from '../bank/topology.ts';
import { type Config } from '../config/config.ts';
import { KafkaStreams } from '../runtime/kafka-streams.ts';
import { PostgresSink } from '../sinks/postgres-sink.ts';

export interface InstanceOptions {
  config: Config;
  logger: Logger;
  /** Run the Postgres sink inside this process (default true; `bankstream sink` runs it alone). */
  sink?: boolean;
}

export interface Instance {
  readonly config: Config;
  readonly streams: KafkaStreams;
  readonly sink: PostgresSink | undefined;
  /** Stops everything: the engine commits what it processed, the sink writes its pending batch. */
  close(): Promise<void>;
}

export function bankTopology(config: Config) {
  return buildBankTopology({ topics: config.topics, dedupRetentionMs: config.dedupRetentionMs });
}

export async function startInstance(options: InstanceOptions): Promise<Instance> {
  const { config, logger } = options;
  const streams = new KafkaStreams(bankTopology(config), {
    applicationId: config.appId,
    instanceId: config.instanceId,
    brokers: config.kafkaBrokers,
    stateDir: config.stateDir,
    commitIntervalMs: config.commitIntervalMs,
    batchRecordsMax: config.batchRecordsMax,
    logger,
  });
  await streams.start();
  let sink: PostgresSink | undefined;
  if (options.sink ?? true) {
    sink = new PostgresSink({ config, logger });
    await sink.start();
  }
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      let first: unknown;
      for (const stop of [() => streams.close(), () => sink?.stop()]) {
        try {
          await stop();
        } catch (error) {
          first ??= error;
        }
      }
      if (first) throw first;
    })());
  return { config, streams, sink, close };
}
