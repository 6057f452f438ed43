// Configuration from environment variables, parsed and validated in one place: loadConfig reads every
// setting through the files of this folder (one per area) and stops at the first bad value with a
// ConfigError naming the variable and what was expected. Import configuration from here.
import os from 'node:os';
import path from 'node:path';
import type { ClusterKeys } from './cluster-key.ts';
import { type RecordAuthConfig, clusterKeysConfig, recordAuthConfig } from './cluster-secret.ts';
import {
  type AuthConfig,
  type HttpConfig,
  type ManagementConfig,
  authConfig,
  httpConfig,
  managementConfig,
} from './http.ts';
import { type UrlPattern, instanceUrlAllow } from './instance-urls.ts';
import { type KafkaSecurityConfig, kafkaSecurityConfig } from './kafka-security.ts';
import { type DatabaseConfig, type PostgresTlsConfig, databaseConfig, pgUrl, postgresTlsConfig } from './postgres.ts';
import { type Env, bool, brokers, int, str, url } from './settings.ts';
import { type TopicNames, topicNames } from './topics.ts';
import { type MembershipConfig, membershipConfig } from './membership.ts';

export { type RecordAuthConfig, clusterKeysConfig, requireClusterKeys } from './cluster-secret.ts';
export type { AuthConfig, HttpConfig, ManagementConfig } from './http.ts';
export { type UrlPattern, instanceUrlAllowed, urlMatchesPattern } from './instance-urls.ts';
export {
  KAFKA_SASL_MECHANISMS,
  KAFKA_SECURITY_PROTOCOLS,
  type KafkaSaslConfig,
  type KafkaSaslMechanism,
  type KafkaSecurityConfig,
  type KafkaSecurityProtocol,
  type KafkaTlsConfig,
  kafkaSecurityConfig,
} from './kafka-security.ts';
export {
  type DatabaseConfig,
  type PostgresSslMode,
  type PostgresTlsConfig,
  type ReadReplicaLagPolicy,
  postgresTlsConfig,
} from './postgres.ts';
export { ConfigError, secretSetting } from './settings.ts';
export { type TopicNames, instancesTopic } from './topics.ts';
export type { MembershipConfig } from './membership.ts';

export interface Config {
  appId: string;
  instanceId: string;
  kafkaBrokers: string[];
  partitions: number;
  replicationFactor: number;
  minInsyncReplicas: number;
  topics: TopicNames;
  /** DATABASE_URL: one host, or several (libpq style) with target_session_attrs; see src/config/pg-hosts.ts. */
  databaseUrl: string;
  database: DatabaseConfig;
  stateDir: string;
  commitIntervalMs: number;
  batchRecordsMax: number;
  /** COMMIT_WHEN_CAUGHT_UP: commit as soon as the fetched input is processed and no commit is in flight. */
  commitWhenCaughtUp: boolean;
  /** FETCH_MAX_WAIT_MS / FETCH_MIN_BYTES: the processing loop's fetch.max.wait.ms and fetch.min.bytes. */
  fetchMaxWaitMs: number;
  fetchMinBytes: number;
  dedupRetentionMs: number;
  /** EXPIRY_STEP_BUDGET_MS: the longest one dedup expiry step holds a task's processing loop (ms). */
  expiryStepBudgetMs: number;
  /** PROCESSING_EXCEPTION_HANDLER: a record whose processing throws goes to the DLQ ('dead-letter') or stops the instance ('fail'). */
  processingExceptionHandler: 'dead-letter' | 'fail';
  httpHost: string;
  httpPort: number;
  advertisedUrl: string;
  /** Which URLs a directory record may name (INSTANCE_URL_ALLOW, default derived from ADVERTISED_URL). */
  instanceUrlAllow: UrlPattern[];
  /** The management listener (/healthz, /readyz with details, /metrics, no token); undefined = none. */
  management: ManagementConfig | undefined;
  /** Reverse proxies in front of the API whose X-Forwarded-For is trusted for the client address (0 = none). */
  trustProxyHops: number;
  standbyReplicas: number;
  /** Static group membership (KIP-345) and the session timeout; see src/runtime/membership.ts. */
  membership: MembershipConfig;
  /** How long a task state folder stays on disk after it was last in use here (ms). */
  stateCleanupDelayMs: number;
  /** ACCEPTABLE_RECOVERY_LAG_RECORDS: a local state folder further behind its changelogs is not warm for placement. */
  acceptableRecoveryLagRecords: number;
  /**
   * RECOVERY_LAG_MEASURE_TIMEOUT_MS: before each join, how long the changelog ends of the local folders
   * are waited for in all (ms; an upper bound, not a wait: a broker that answers ends it at once).
   */
  recoveryLagMeasureTimeoutMs: number;
  /** OFFSET_RESET: where a partition without a committed offset starts (safe | earliest | none); see src/kafka/offset-reset.ts. */
  offsetReset: OffsetResetPolicy;
  logLevel: string;
  sinkGroupId: string;
  sinkBatchRowsMax: number;
  sinkBatchMs: number;
  http: HttpConfig;
  auth: AuthConfig;
  kafkaSecurity: KafkaSecurityConfig;
  postgresTls: PostgresTlsConfig;
  /** The cluster secret (CLUSTER_SECRET); undefined when unset: see requireClusterKeys. */
  clusterKeys: ClusterKeys | undefined;
  /** How the engine treats internal records without a MAC (upgrades) and which ones an operator skips. */
  recordAuth: RecordAuthConfig;
}

/** OFFSET_RESET: where a partition without a committed offset starts; the rule is src/kafka/offset-reset.ts. */
export type OffsetResetPolicy = 'safe' | 'earliest' | 'none';
export const OFFSET_RESET_POLICIES: readonly OffsetResetPolicy[] = ['safe', 'earliest', 'none'];

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const NAME_PATTERN = /^[A-Za-z0-9._-]{1,200}$/;

/** Parses and validates the whole configuration; throws ConfigError on the first bad value. */
export function loadConfig(env: Env = process.env): Config {
  const appId = str(env, 'APP_ID', 'bankstream', NAME_PATTERN, 'letters, digits, ".", "_" or "-"');
  const instanceId = str(env, 'INSTANCE_ID', 'instance-0', NAME_PATTERN, 'letters, digits, ".", "_" or "-"');
  const httpPort = int(env, 'HTTP_PORT', 8080, 0, 65535);
  const httpHost = str(env, 'HTTP_HOST', '127.0.0.1');
  const advertisedUrl = url(env, 'ADVERTISED_URL', `http://${httpHost}:${httpPort}`, ['http:', 'https:']);
  return {
    appId,
    instanceId,
    kafkaBrokers: brokers(env, 'KAFKA_BROKERS', '127.0.0.1:9092'),
    partitions: int(env, 'PARTITIONS', 12, 1, 10_000),
    replicationFactor: int(env, 'REPLICATION_FACTOR', 1, 1, 32),
    minInsyncReplicas: int(env, 'MIN_INSYNC_REPLICAS', 1, 1, 32),
    topics: topicNames(env, appId),
    databaseUrl: pgUrl(env, 'DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/bankstream'),
    database: databaseConfig(env),
    stateDir: path.resolve(str(env, 'STATE_DIR', path.join(os.homedir(), '.bankstream', 'state'))),
    commitIntervalMs: int(env, 'COMMIT_INTERVAL_MS', 100, 1, 60_000),
    batchRecordsMax: int(env, 'BATCH_RECORDS_MAX', 15_000, 1, 1_000_000),
    commitWhenCaughtUp: bool(env, 'COMMIT_WHEN_CAUGHT_UP', true),
    fetchMaxWaitMs: int(env, 'FETCH_MAX_WAIT_MS', 50, 1, 5_000),
    fetchMinBytes: int(env, 'FETCH_MIN_BYTES', 1, 1, 16 * 1024 * 1024),
    dedupRetentionMs: int(env, 'DEDUP_RETENTION_MS', 7 * 24 * 3600 * 1000, 1000, 365 * 24 * 3600 * 1000),
    expiryStepBudgetMs: int(env, 'EXPIRY_STEP_BUDGET_MS', 20, 1, 1000),
    processingExceptionHandler: str(
      env,
      'PROCESSING_EXCEPTION_HANDLER',
      'dead-letter',
      /^(dead-letter|fail)$/,
      'dead-letter or fail',
    ) as 'dead-letter' | 'fail',
    httpHost,
    httpPort,
    advertisedUrl,
    instanceUrlAllow: instanceUrlAllow(env, advertisedUrl),
    management: managementConfig(env, httpHost, httpPort),
    trustProxyHops: int(env, 'HTTP_TRUST_PROXY_HOPS', 0, 0, 10),
    standbyReplicas: int(env, 'STANDBY_REPLICAS', 0, 0, 8),
    membership: membershipConfig(env),
    stateCleanupDelayMs: int(env, 'STATE_CLEANUP_DELAY_MS', 600_000, 0, 30 * 24 * 3600 * 1000),
    acceptableRecoveryLagRecords: int(env, 'ACCEPTABLE_RECOVERY_LAG_RECORDS', 10_000, 0, 1_000_000_000),
    recoveryLagMeasureTimeoutMs: int(env, 'RECOVERY_LAG_MEASURE_TIMEOUT_MS', 5_000, 0, 60_000),
    offsetReset: str(
      env,
      'OFFSET_RESET',
      'safe',
      new RegExp(`^(${OFFSET_RESET_POLICIES.join('|')})$`),
      OFFSET_RESET_POLICIES.join(', '),
    ) as OffsetResetPolicy,
    logLevel: str(env, 'LOG_LEVEL', 'info', new RegExp(`^(${LOG_LEVELS.join('|')})$`), LOG_LEVELS.join(', ')),
    sinkGroupId: str(env, 'SINK_GROUP_ID', `${appId}-sink`, NAME_PATTERN, 'letters, digits, ".", "_" or "-"'),
    sinkBatchRowsMax: int(env, 'SINK_BATCH_ROWS_MAX', 5000, 1, 1_000_000),
    sinkBatchMs: int(env, 'SINK_BATCH_MS', 200, 1, 60_000),
    http: httpConfig(env),
    auth: authConfig(env),
    kafkaSecurity: kafkaSecurityConfig(env),
    postgresTls: postgresTlsConfig(env),
    clusterKeys: clusterKeysConfig(env),
    recordAuth: recordAuthConfig(env),
  };
}
