// The Kafka broker of `bankstream dev`: the configured brokers when they answer, else the project's
// local broker (scripts/kafka.sh), started here and stopped on exit only when this run started it.
import path from 'node:path';
import { createAdmin, type KafkaSecurityOptions } from '../kafka/clients.ts';
import { type DevReporter, runCommand } from './process.ts';

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** True when a broker answers a metadata request within the timeout. */
export async function brokersAnswer(
  brokers: string[],
  security?: KafkaSecurityOptions,
  timeoutMs = 5000,
): Promise<boolean> {
  const admin = createAdmin({
    bootstrapBrokers: brokers,
    ...(security ? { security } : {}),
    clientId: 'bankstream-dev-probe',
    connectTimeoutMs: Math.min(timeoutMs, 2000),
    requestTimeoutMs: timeoutMs,
    retries: 0,
  });
  try {
    await admin.metadata({ topics: [] });
    return true;
  } catch {
    return false;
  } finally {
    await admin.close().catch(() => undefined);
  }
}

/** The port of a single loopback broker (the only kind scripts/kafka.sh can start), else undefined. */
export function localBrokerPort(brokers: string[]): number | undefined {
  if (brokers.length !== 1) return undefined;
  const match = /^(.*):(\d+)$/.exec(brokers[0]!);
  if (!match || !LOCAL_HOSTS.has(match[1]!)) return undefined;
  return Number(match[2]);
}

export interface LocalKafka {
  port: number;
  stop(): Promise<void>;
}

/** Starts the local broker with scripts/kafka.sh (fetches the jars once; needs Java 17+ and Maven). */
export async function startLocalKafka(projectRoot: string, port: number, reporter: DevReporter): Promise<LocalKafka> {
  const script = path.join(projectRoot, 'scripts', 'kafka.sh');
  const env = { ...process.env, KAFKA_PORT: String(port) };
  reporter.note(`no Kafka broker answers on 127.0.0.1:${port}; starting the local one (scripts/kafka.sh start)`);
  await runCommand('bash', [script, 'start'], {
    reporter,
    env,
    failureHint: 'needs Java 17+ and Maven, or run Kafka yourself and set KAFKA_BROKERS',
  });
  let stopped: Promise<void> | undefined;
  return {
    port,
    stop: () => (stopped ??= runCommand('bash', [script, 'stop'], { reporter, env })),
  };
}
