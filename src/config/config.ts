// Configuration from environment variables, parsed and validated in one place.
// A bad value stops start-up with a ConfigError naming the variable and what was expected.
import os from 'node:os';
import path from 'node:path';

export class ConfigError extends Error {
  readonly code = 'config_invalid';
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

export interface TopicNames {
  input: string;
  credits: string;
  completed: string;
  failed: string;
  audit: string;
  dlq: string;
}

export interface Config {
  appId: string;
  instanceId: string;
  kafkaBrokers: string[];
  partitions: number;
  replicationFactor: number;
  minInsyncReplicas: number;
  topics: TopicNames;
  databaseUrl: string;
  stateDir: string;
  commitIntervalMs: number;
  batchRecordsMax: number;
  dedupRetentionMs: number;
  httpHost: string;
  httpPort: number;
  advertisedUrl: string;
  standbyReplicas: number;
  logLevel: string;
  sinkGroupId: string;
  sinkBatchRowsMax: number;
  sinkBatchMs: number;
}

type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const NAME_PATTERN = /^[A-Za-z0-9._-]{1,200}$/;

function str(env: Env, name: string, fallback: string, pattern?: RegExp, expected?: string): string {
  const raw = env[name];
  const value = raw === undefined || raw === '' ? fallback : raw.trim();
  if (pattern && !pattern.test(value)) {
    throw new ConfigError(name, `expected ${expected ?? pattern.source}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) {
    throw new ConfigError(name, `expected an integer between ${min} and ${max}, got ${JSON.stringify(raw)}`);
  }
  const value = Number(raw.trim());
  if (value < min || value > max) {
    throw new ConfigError(name, `expected an integer between ${min} and ${max}, got ${value}`);
  }
  return value;
}

function brokers(env: Env, name: string, fallback: string): string[] {
  const value = str(env, name, fallback);
  const list = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (list.length === 0) throw new ConfigError(name, 'expected a comma-separated list of host:port');
  for (const broker of list) {
    const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(broker);
    if (!match || Number(match[2]) < 1 || Number(match[2]) > 65535) {
      throw new ConfigError(name, `expected host:port, got ${JSON.stringify(broker)}`);
    }
  }
  return list;
}

function url(env: Env, name: string, fallback: string, protocols: string[]): string {
  const value = str(env, name, fallback);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, `expected a URL (${protocols.join(' or ')}), got an unparseable value`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `expected a ${protocols.join(' or ')} URL, got protocol ${parsed.protocol}`);
  }
  return value;
}

/** Parses and validates the whole configuration; throws ConfigError on the first bad value. */
export function loadConfig(env: Env = process.env): Config {
  const appId = str(env, 'APP_ID', 'bankstream', NAME_PATTERN, 'letters, digits, ".", "_" or "-"');
  const instanceId = str(env, 'INSTANCE_ID', 'instance-0', NAME_PATTERN, 'letters, digits, ".", "_" or "-"');
  const httpPort = int(env, 'HTTP_PORT', 8080, 0, 65535);
  const httpHost = str(env, 'HTTP_HOST', '127.0.0.1');
  const topic = (name: string, fallback: string) =>
    str(env, name, fallback, /^[A-Za-z0-9._-]{1,249}$/, 'a Kafka topic name (letters, digits, ".", "_", "-")');
  return {
    appId,
    instanceId,
    kafkaBrokers: brokers(env, 'KAFKA_BROKERS', '127.0.0.1:9092'),
    partitions: int(env, 'PARTITIONS', 12, 1, 10_000),
    replicationFactor: int(env, 'REPLICATION_FACTOR', 1, 1, 32),
    minInsyncReplicas: int(env, 'MIN_INSYNC_REPLICAS', 1, 1, 32),
    topics: {
      input: topic('TOPIC_INPUT', 'transaction_initiated'),
      credits: topic('TOPIC_CREDITS', `${appId}-credits`),
      completed: topic('TOPIC_COMPLETED', 'transaction_completed'),
      failed: topic('TOPIC_FAILED', 'transaction_failed'),
      audit: topic('TOPIC_AUDIT', 'audit_log'),
      dlq: topic('TOPIC_DLQ', 'transaction_initiated.dlq'),
    },
    databaseUrl: url(env, 'DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/bankstream', ['postgres:', 'postgresql:']),
    stateDir: path.resolve(str(env, 'STATE_DIR', path.join(os.homedir(), '.bankstream', 'state'))),
    commitIntervalMs: int(env, 'COMMIT_INTERVAL_MS', 100, 1, 60_000),
    batchRecordsMax: int(env, 'BATCH_RECORDS_MAX', 5000, 1, 1_000_000),
    dedupRetentionMs: int(env, 'DEDUP_RETENTION_MS', 7 * 24 * 3600 * 1000, 1000, 365 * 24 * 3600 * 1000),
    httpHost,
    httpPort,
    advertisedUrl: url(env, 'ADVERTISED_URL', `http://${httpHost}:${httpPort}`, ['http:', 'https:']),
    standbyReplicas: int(env, 'STANDBY_REPLICAS', 0, 0, 8),
    logLevel: str(env, 'LOG_LEVEL', 'info', new RegExp(`^(${LOG_LEVELS.join('|')})$`), LOG_LEVELS.join(', ')),
    sinkGroupId: str(env, 'SINK_GROUP_ID', `${appId}-sink`, NAME_PATTERN, 'letters, digits, ".", "_" or "-"'),
    sinkBatchRowsMax: int(env, 'SINK_BATCH_ROWS_MAX', 5000, 1, 1_000_000),
    sinkBatchMs: int(env, 'SINK_BATCH_MS', 200, 1, 60_000),
  };
}

/** The changelog topic of a store, named as Kafka Streams names them. */
export function changelogTopic(appId: string, store: string): string {
  return `${appId}-${store}-changelog`;
}
