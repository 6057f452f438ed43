// Configuration from environment variables, parsed and validated in one place.
// A bad value stops start-up with a ConfigError naming the variable and what was expected.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ClusterKey, ClusterKeys } from './cluster-key.ts';
import { Secret } from './secret.ts';
import { OFFSET_RESET_POLICIES, type OffsetResetPolicy } from '../runtime/offset-reset.ts';
import { PgUrlError, firstHostUrl } from './pg-hosts.ts';

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
  /** DATABASE_URL: one host, or several (libpq style) with target_session_attrs; see src/config/pg-hosts.ts. */
  databaseUrl: string;
  database: DatabaseConfig;
  stateDir: string;
  commitIntervalMs: number;
  batchRecordsMax: number;
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
  management: { host: string; port: number } | undefined;
  /** Reverse proxies in front of the API whose X-Forwarded-For is trusted for the client address (0 = none). */
  trustProxyHops: number;
  standbyReplicas: number;
  /** How long a task state folder stays on disk after it was last in use here (ms). */
  stateCleanupDelayMs: number;
  /** ACCEPTABLE_RECOVERY_LAG_RECORDS: a local state folder further behind its changelogs is not warm for placement. */
  acceptableRecoveryLagRecords: number;
  /** OFFSET_RESET: where a partition without a committed offset starts (safe | earliest | none); see src/runtime/offset-reset.ts. */
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

/** Authentication of internal records (src/runtime/record-mac.ts): the upgrade and incident switches. */
export interface RecordAuthConfig {
  /** CHANGELOG_ACCEPT_UNSIGNED: restore accepts changelog records with no MAC at all (one upgrade, then off). */
  changelogAcceptUnsigned: boolean;
  /** LEGS_ACCEPT_UNSIGNED: repartition records (legs) with no MAC at all are applied (one upgrade, then off). */
  legsAcceptUnsigned: boolean;
  /** CHANGELOG_SKIP_RECORDS: exact changelog records ("topic:partition:offset") restore leaves out after an incident. */
  changelogSkipRecords: ReadonlySet<string>;
}

/** Bounds of the HTTP API (src/http). */
export interface HttpConfig {
  /** Largest accepted request body; larger ones get 413. */
  bodyLimitBytes: number;
  /** Upper bound of `?wait=<ms>` on command routes. */
  waitMaxMs: number;
  /** Commands waiting for their outcome at once (each holds a request open). */
  waitersMax: number;
  /** Timeout of a query proxied to the instance that owns the account. */
  proxyTimeoutMs: number;
  /** Events buffered per Server-Sent Events connection before a slow client is disconnected. */
  sseBufferMax: number;
  sseHeartbeatMs: number;
  sseConnectionsMax: number;
  /** Per principal (token subject): open event streams, waiting requests, commands per second (a 1 s window). */
  sseStreamsPerPrincipalMax: number;
  waitersPerPrincipalMax: number;
  commandsPerPrincipalPerS: number;
  /** Login throttling: failures of one username from one client address before the backoff starts, and its bound. */
  loginFailuresFree: number;
  loginBackoffMaxS: number;
  /** Failed logins of one client address (any username) per hour, and of one username (any address) per hour. */
  loginFailuresPerClientPerHour: number;
  loginFailuresPerUserPerHour: number;
}

/**
 * One allowed shape of instance URLs: scheme, host (exact, `*` = any single DNS label, `*.<domain>` = one
 * label under the domain), port (`undefined` = any) and path prefix.
 */
export interface UrlPattern {
  protocol: 'http:' | 'https:';
  host: string;
  port: string | undefined;
  path: string;
}

/**
 * JWT bearer authentication. `jwks` mode verifies tokens of an external issuer against its JWKS URL;
 * `dev` mode signs and verifies HS256 tokens with a local secret and issues them at POST /v1/auth/token.
 */
export interface AuthConfig {
  mode: 'jwks' | 'dev';
  jwksUrl: string | undefined;
  issuer: string;
  audience: string;
  /** dev mode: the HS256 secret; undefined = generated at start (tokens then only work on this instance). */
  devSecret: string | undefined;
  tokenTtlS: number;
  clockToleranceS: number;
  /** The claim carrying the role ("customer", "teller" or "admin"; a string or an array of strings). */
  roleClaim: string;
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
  const list = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
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
  const advertisedUrl = url(env, 'ADVERTISED_URL', `http://${httpHost}:${httpPort}`, ['http:', 'https:']);
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
    databaseUrl: pgUrl(env, 'DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/bankstream'),
    database: databaseConfig(env),
    stateDir: path.resolve(str(env, 'STATE_DIR', path.join(os.homedir(), '.bankstream', 'state'))),
    commitIntervalMs: int(env, 'COMMIT_INTERVAL_MS', 100, 1, 60_000),
    batchRecordsMax: int(env, 'BATCH_RECORDS_MAX', 5000, 1, 1_000_000),
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
    stateCleanupDelayMs: int(env, 'STATE_CLEANUP_DELAY_MS', 600_000, 0, 30 * 24 * 3600 * 1000),
    acceptableRecoveryLagRecords: int(env, 'ACCEPTABLE_RECOVERY_LAG_RECORDS', 10_000, 0, 1_000_000_000),
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

const RECORD_COORDINATE = /^([A-Za-z0-9._-]{1,249}):(0|[1-9][0-9]{0,8}):(0|[1-9][0-9]{0,18})$/;
const SKIP_RECORDS_MAX = 1000;

function recordAuthConfig(env: Env): RecordAuthConfig {
  const raw = (env['CHANGELOG_SKIP_RECORDS'] ?? '').trim();
  const items = raw === '' ? [] : raw.split(',').map((item) => item.trim());
  if (items.length > SKIP_RECORDS_MAX)
    throw new ConfigError('CHANGELOG_SKIP_RECORDS', `at most ${SKIP_RECORDS_MAX} records, got ${items.length}`);
  for (const item of items) {
    if (!RECORD_COORDINATE.test(item)) {
      throw new ConfigError(
        'CHANGELOG_SKIP_RECORDS',
        `expected comma-separated topic:partition:offset (as the restore error names them), got ${JSON.stringify(item)}`,
      );
    }
  }
  return {
    changelogAcceptUnsigned: bool(env, 'CHANGELOG_ACCEPT_UNSIGNED', false),
    legsAcceptUnsigned: bool(env, 'LEGS_ACCEPT_UNSIGNED', false),
    changelogSkipRecords: new Set(items),
  };
}

export type ReadReplicaLagPolicy = 'primary' | 'unavailable';

export interface DatabaseConfig {
  /** DATABASE_READ_URL: where the API's history reads go (a streaming replica); undefined = DATABASE_URL. */
  readUrl: string | undefined;
  /** READ_REPLICA_LAG_MAX_MS: a replica further behind than this is not read from. */
  readReplicaLagMaxMs: number;
  /** READ_REPLICA_LAG_POLICY: what a read does then: 'primary' (read DATABASE_URL) or 'unavailable' (503). */
  readReplicaLagPolicy: ReadReplicaLagPolicy;
  /** DB_BREAKER_FAILURES: consecutive failed API database calls that open the circuit breaker. */
  breakerFailures: number;
  /** DB_BREAKER_OPEN_MS: how long an open breaker answers 503 at once before one probe (half-open). */
  breakerOpenMs: number;
}

function databaseConfig(env: Env): DatabaseConfig {
  return {
    readUrl: env['DATABASE_READ_URL'] ? pgUrl(env, 'DATABASE_READ_URL', '') : undefined,
    readReplicaLagMaxMs: int(env, 'READ_REPLICA_LAG_MAX_MS', 5_000, 0, 3_600_000),
    readReplicaLagPolicy: str(
      env,
      'READ_REPLICA_LAG_POLICY',
      'primary',
      /^(primary|unavailable)$/,
      'primary or unavailable',
    ) as ReadReplicaLagPolicy,
    breakerFailures: int(env, 'DB_BREAKER_FAILURES', 5, 1, 1_000),
    breakerOpenMs: int(env, 'DB_BREAKER_OPEN_MS', 5_000, 100, 600_000),
  };
}

/** A postgres URL with one host or a libpq-style host list (each host must make a valid URL). */
function pgUrl(env: Env, name: string, fallback: string): string {
  const value = str(env, name, fallback);
  let first: string;
  try {
    first = firstHostUrl(value);
  } catch (error) {
    throw new ConfigError(name, error instanceof PgUrlError ? error.message : 'expected a postgres URL');
  }
  url({ [name]: first }, name, '', ['postgres:', 'postgresql:']);
  return value;
}

function httpConfig(env: Env): HttpConfig {
  return {
    bodyLimitBytes: int(env, 'HTTP_BODY_LIMIT_BYTES', 16 * 1024, 1024, 1024 * 1024),
    waitMaxMs: int(env, 'HTTP_WAIT_MAX_MS', 30_000, 0, 120_000),
    waitersMax: int(env, 'HTTP_WAITERS_MAX', 10_000, 1, 1_000_000),
    proxyTimeoutMs: int(env, 'HTTP_PROXY_TIMEOUT_MS', 3000, 100, 60_000),
    sseBufferMax: int(env, 'HTTP_SSE_BUFFER_MAX', 256, 1, 100_000),
    sseHeartbeatMs: int(env, 'HTTP_SSE_HEARTBEAT_MS', 15_000, 100, 300_000),
    sseConnectionsMax: int(env, 'HTTP_SSE_CONNECTIONS_MAX', 1000, 1, 100_000),
    sseStreamsPerPrincipalMax: int(env, 'HTTP_SSE_STREAMS_PER_PRINCIPAL_MAX', 10, 1, 100_000),
    waitersPerPrincipalMax: int(env, 'HTTP_WAITERS_PER_PRINCIPAL_MAX', 100, 1, 1_000_000),
    commandsPerPrincipalPerS: int(env, 'HTTP_COMMANDS_PER_PRINCIPAL_PER_S', 200, 1, 1_000_000),
    loginFailuresFree: int(env, 'LOGIN_FAILURES_FREE', 5, 1, 1000),
    loginBackoffMaxS: int(env, 'LOGIN_BACKOFF_MAX_S', 900, 1, 86_400),
    loginFailuresPerClientPerHour: int(env, 'LOGIN_FAILURES_PER_CLIENT_PER_HOUR', 100, 1, 1_000_000),
    loginFailuresPerUserPerHour: int(env, 'LOGIN_FAILURES_PER_USER_PER_HOUR', 30, 1, 1_000_000),
  };
}

/** MANAGEMENT_PORT (and MANAGEMENT_HOST, default HTTP_HOST); unset = no management listener. */
function managementConfig(env: Env, httpHost: string, httpPort: number): Config['management'] {
  if (!env['MANAGEMENT_PORT']) {
    if (env['MANAGEMENT_HOST']) throw new ConfigError('MANAGEMENT_HOST', 'is set but MANAGEMENT_PORT is not');
    return undefined;
  }
  const port = int(env, 'MANAGEMENT_PORT', 0, 0, 65535);
  if (port !== 0 && port === httpPort)
    throw new ConfigError(
      'MANAGEMENT_PORT',
      `must differ from HTTP_PORT (${httpPort}): the management surface is a separate listener`,
    );
  return { host: str(env, 'MANAGEMENT_HOST', httpHost), port };
}

const HOST_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * INSTANCE_URL_ALLOW: comma-separated `scheme://host[:port][/path]` patterns, host `*` (one DNS label, e.g.
 * compose service names) or `*.<domain>` (one label under a domain, e.g. the pods of a headless Service),
 * port `*` = any. Default: ADVERTISED_URL's scheme and path, and its siblings: for a DNS name with a dot
 * `*.<parent domain>` on the same port (pods of a headless Service), for a single label `*` on the same port
 * (compose services), for an IP address or localhost that host on any port (instances of one machine, which
 * differ by port; instances on other addresses need INSTANCE_URL_ALLOW).
 */
function instanceUrlAllow(env: Env, advertisedUrl: string): UrlPattern[] {
  const raw = env['INSTANCE_URL_ALLOW']?.trim();
  if (!raw) return [derivedPattern(advertisedUrl)];
  const patterns = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (patterns.length === 0)
    throw new ConfigError('INSTANCE_URL_ALLOW', 'expected at least one scheme://host[:port] pattern');
  const own = new URL(advertisedUrl);
  const parsed = patterns.map((pattern) => parseUrlPattern(pattern));
  if (own.port !== '0' && !parsed.some((p) => urlMatchesPattern(own, p))) {
    throw new ConfigError(
      'INSTANCE_URL_ALLOW',
      `does not allow this instance's own ADVERTISED_URL ${advertisedUrl}: other instances would ignore its directory record`,
    );
  }
  return parsed;
}

function parseUrlPattern(pattern: string): UrlPattern {
  const match =
    /^(https?):\/\/(\*|\*\.[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\*|\d{1,5}))?(\/[A-Za-z0-9._~/-]*)?$/.exec(
      pattern,
    );
  if (!match)
    throw new ConfigError(
      'INSTANCE_URL_ALLOW',
      `expected scheme://host[:port][/path] with host "*", "*.domain" or a name, got ${JSON.stringify(pattern)}`,
    );
  const [, scheme, host, port, urlPath] = match;
  if (port !== undefined && port !== '*' && (Number(port) < 1 || Number(port) > 65535))
    throw new ConfigError('INSTANCE_URL_ALLOW', `port ${port} is out of range in ${JSON.stringify(pattern)}`);
  const domain = host!.startsWith('*.') ? host!.slice(2) : undefined;
  if (domain !== undefined && !domain.split('.').every((label) => HOST_LABEL.test(label.toLowerCase()))) {
    throw new ConfigError('INSTANCE_URL_ALLOW', `"${domain}" is not a DNS domain in ${JSON.stringify(pattern)}`);
  }
  const protocol = `${scheme}:` as UrlPattern['protocol'];
  const defaultPort = protocol === 'https:' ? '443' : '80';
  return {
    protocol,
    host: host!.toLowerCase(),
    port: port === '*' ? undefined : (port ?? defaultPort),
    path: normalizePath(urlPath ?? '/'),
  };
}

function derivedPattern(advertisedUrl: string): UrlPattern {
  const own = new URL(advertisedUrl);
  const parts = instanceUrlParts(own);
  const host = parts.host;
  const oneMachine = host.startsWith('[') || /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host === 'localhost';
  if (oneMachine) return { protocol: parts.protocol, host, port: undefined, path: parts.path };
  const derivedHost = host.includes('.') ? `*.${host.slice(host.indexOf('.') + 1)}` : '*';
  return {
    protocol: parts.protocol,
    host: derivedHost,
    port: own.port === '0' ? undefined : parts.port,
    path: parts.path,
  };
}

function instanceUrlParts(url: URL): { protocol: UrlPattern['protocol']; host: string; port: string; path: string } {
  const protocol = url.protocol as UrlPattern['protocol'];
  return {
    protocol,
    host: url.hostname.toLowerCase(),
    port: url.port || (protocol === 'https:' ? '443' : '80'),
    path: normalizePath(url.pathname),
  };
}

function normalizePath(p: string): string {
  return p.endsWith('/') ? p : `${p}/`;
}

/** Whether an instance URL fits a pattern: no credentials, query or fragment; scheme, host, port and path as allowed. */
export function urlMatchesPattern(url: URL, pattern: UrlPattern): boolean {
  if (url.username || url.password || url.search || url.hash) return false;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  const parts = instanceUrlParts(url);
  if (parts.protocol !== pattern.protocol) return false;
  if (pattern.port !== undefined && parts.port !== pattern.port) return false;
  if (parts.path !== pattern.path) return false;
  if (pattern.host === '*') return HOST_LABEL.test(parts.host);
  if (pattern.host.startsWith('*.')) {
    const suffix = pattern.host.slice(1);
    return parts.host.endsWith(suffix) && HOST_LABEL.test(parts.host.slice(0, -suffix.length));
  }
  return parts.host === pattern.host;
}

/** Whether an instance URL (a string from a directory record) is one of the allowed ones. */
export function instanceUrlAllowed(value: string, patterns: readonly UrlPattern[]): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return patterns.some((pattern) => urlMatchesPattern(url, pattern));
}

// A secret shorter than the HS256 output (32 bytes) weakens the MAC (RFC 7518 section 3.2).
const DEV_SECRET_CHARS_MIN = 32;

function authConfig(env: Env): AuthConfig {
  const jwksUrl = env['AUTH_JWKS_URL'] ? url(env, 'AUTH_JWKS_URL', '', ['https:', 'http:']) : undefined;
  const devSecret = env['AUTH_DEV_SECRET'] || undefined;
  if (jwksUrl && devSecret)
    throw new ConfigError(
      'AUTH_DEV_SECRET',
      'must not be set together with AUTH_JWKS_URL (dev tokens would be accepted in production)',
    );
  if (devSecret !== undefined && devSecret.length < DEV_SECRET_CHARS_MIN) {
    throw new ConfigError(
      'AUTH_DEV_SECRET',
      `expected at least ${DEV_SECRET_CHARS_MIN} characters, got ${devSecret.length}`,
    );
  }
  // With an external issuer both must be named: a token minted for another audience must not pass.
  for (const name of ['AUTH_ISSUER', 'AUTH_AUDIENCE']) {
    if (jwksUrl && !env[name]) throw new ConfigError(name, 'is required when AUTH_JWKS_URL is set');
  }
  return {
    mode: jwksUrl ? 'jwks' : 'dev',
    jwksUrl,
    issuer: str(env, 'AUTH_ISSUER', 'bankstream', /^\S{1,500}$/, 'a non-empty string without spaces'),
    audience: str(env, 'AUTH_AUDIENCE', 'bankstream-api', /^\S{1,500}$/, 'a non-empty string without spaces'),
    devSecret,
    tokenTtlS: int(env, 'AUTH_TOKEN_TTL_S', 3600, 60, 7 * 24 * 3600),
    clockToleranceS: int(env, 'AUTH_CLOCK_TOLERANCE_S', 5, 0, 300),
    roleClaim: str(env, 'AUTH_ROLE_CLAIM', 'role', /^[A-Za-z0-9_:/.-]{1,200}$/, 'a JWT claim name'),
  };
}

/** The compacted topic where instances publish which partitions they run (interactive-query routing). */
export function instancesTopic(appId: string): string {
  return `${appId}-instances`;
}

/** The changelog topic of a store, named as Kafka Streams names them. */
export function changelogTopic(appId: string, store: string): string {
  return `${appId}-${store}-changelog`;
}

// ---- Connection security: Kafka (TLS, SASL) and PostgreSQL (TLS) ---------------------------------
// Certificate, key and password files are read here, once, at start: a missing or unreadable file is
// a ConfigError naming its variable, not a connection failure later. Secret values are held in
// Secret (printed as "[redacted]") and never echoed in error messages.

export type KafkaSecurityProtocol = 'PLAINTEXT' | 'SSL' | 'SASL_PLAINTEXT' | 'SASL_SSL';
export type KafkaSaslMechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

export interface KafkaTlsConfig {
  /** PEM CA certificates to trust (KAFKA_SSL_CA_FILE); undefined = Node's bundled public CAs. */
  ca: string | undefined;
  /** PEM client certificate (KAFKA_SSL_CERT_FILE) and its private key (KAFKA_SSL_KEY_FILE): both or neither. */
  cert: string | undefined;
  key: Secret | undefined;
  /** Verify the broker's certificate chain (KAFKA_SSL_REJECT_UNAUTHORIZED, default true). */
  rejectUnauthorized: boolean;
  /** Match the broker's host name against its certificate (KAFKA_SSL_VERIFY_HOSTNAME, default true). */
  verifyHostname: boolean;
}

export interface KafkaSaslConfig {
  mechanism: KafkaSaslMechanism;
  username: string;
  /** KAFKA_SASL_PASSWORD, or the content of KAFKA_SASL_PASSWORD_FILE without its final newline. */
  password: Secret;
}

export interface KafkaSecurityConfig {
  protocol: KafkaSecurityProtocol;
  tls: KafkaTlsConfig | undefined;
  sasl: KafkaSaslConfig | undefined;
}

export const KAFKA_SECURITY_PROTOCOLS: readonly KafkaSecurityProtocol[] = [
  'PLAINTEXT',
  'SSL',
  'SASL_PLAINTEXT',
  'SASL_SSL',
];
export const KAFKA_SASL_MECHANISMS: readonly KafkaSaslMechanism[] = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'];
const KAFKA_TLS_VARIABLES = [
  'KAFKA_SSL_CA_FILE',
  'KAFKA_SSL_CERT_FILE',
  'KAFKA_SSL_KEY_FILE',
  'KAFKA_SSL_REJECT_UNAUTHORIZED',
  'KAFKA_SSL_VERIFY_HOSTNAME',
];
const KAFKA_SASL_VARIABLES = [
  'KAFKA_SASL_MECHANISM',
  'KAFKA_SASL_USERNAME',
  'KAFKA_SASL_PASSWORD',
  'KAFKA_SASL_PASSWORD_FILE',
];

/** KAFKA_SECURITY_PROTOCOL with its KAFKA_SSL_* and KAFKA_SASL_* settings, files read and checked. */
export function kafkaSecurityConfig(env: Env): KafkaSecurityConfig {
  const given = (env['KAFKA_SECURITY_PROTOCOL'] ?? '').trim().toUpperCase() || 'PLAINTEXT';
  const protocol = KAFKA_SECURITY_PROTOCOLS.find((candidate) => candidate === given);
  if (!protocol) {
    throw new ConfigError(
      'KAFKA_SECURITY_PROTOCOL',
      `expected ${KAFKA_SECURITY_PROTOCOLS.join(', ')}, got ${JSON.stringify(env['KAFKA_SECURITY_PROTOCOL'])}`,
    );
  }
  const usesTls = protocol === 'SSL' || protocol === 'SASL_SSL';
  const usesSasl = protocol === 'SASL_PLAINTEXT' || protocol === 'SASL_SSL';
  // A setting the protocol ignores is a mistake: whoever set it believes the connection is protected.
  const ignored = [...(usesTls ? [] : KAFKA_TLS_VARIABLES), ...(usesSasl ? [] : KAFKA_SASL_VARIABLES)].find(
    (name) => env[name],
  );
  if (ignored) {
    const wanted = KAFKA_TLS_VARIABLES.includes(ignored) ? 'SSL or SASL_SSL' : 'SASL_PLAINTEXT or SASL_SSL';
    throw new ConfigError(
      ignored,
      `is set but KAFKA_SECURITY_PROTOCOL=${protocol} does not use it; set KAFKA_SECURITY_PROTOCOL to ${wanted}`,
    );
  }
  return {
    protocol,
    tls: usesTls ? kafkaTlsConfig(env) : undefined,
    sasl: usesSasl ? kafkaSaslConfig(env, protocol) : undefined,
  };
}

function kafkaTlsConfig(env: Env): KafkaTlsConfig {
  const ca = optionalFile(env, 'KAFKA_SSL_CA_FILE');
  if (ca) checkCertificates(ca, 'KAFKA_SSL_CA_FILE');
  const cert = optionalFile(env, 'KAFKA_SSL_CERT_FILE');
  const key = optionalFile(env, 'KAFKA_SSL_KEY_FILE');
  checkKeyPair(cert, key, 'KAFKA_SSL_CERT_FILE', 'KAFKA_SSL_KEY_FILE');
  return {
    ca: ca?.text,
    cert: cert?.text,
    key: key ? new Secret(key.text) : undefined,
    rejectUnauthorized: bool(env, 'KAFKA_SSL_REJECT_UNAUTHORIZED', true),
    verifyHostname: bool(env, 'KAFKA_SSL_VERIFY_HOSTNAME', true),
  };
}

function kafkaSaslConfig(env: Env, protocol: KafkaSecurityProtocol): KafkaSaslConfig {
  const given = (env['KAFKA_SASL_MECHANISM'] ?? '').trim().toUpperCase();
  const mechanism = KAFKA_SASL_MECHANISMS.find((candidate) => candidate === given);
  if (!mechanism) {
    const got = given
      ? `got ${JSON.stringify(env['KAFKA_SASL_MECHANISM'])}`
      : `required with KAFKA_SECURITY_PROTOCOL=${protocol}`;
    throw new ConfigError('KAFKA_SASL_MECHANISM', `expected ${KAFKA_SASL_MECHANISMS.join(', ')}; ${got}`);
  }
  const username = (env['KAFKA_SASL_USERNAME'] ?? '').trim();
  if (!username) throw new ConfigError('KAFKA_SASL_USERNAME', `is required with KAFKA_SECURITY_PROTOCOL=${protocol}`);
  return {
    mechanism,
    username,
    password: secretSetting(env, 'KAFKA_SASL_PASSWORD', `is required with KAFKA_SECURITY_PROTOCOL=${protocol}`),
  };
}

/**
 * A secret from NAME or from the file named by NAME_FILE (one of the two; a final newline in the file is
 * not part of it). Error messages name the variable and the file, never the value.
 */
export function secretSetting(env: Env, name: string, missing: string): Secret {
  const inline = env[name];
  const fileVariable = `${name}_FILE`;
  if (inline && env[fileVariable]) throw new ConfigError(name, `set either ${name} or ${fileVariable}, not both`);
  if (inline) return new Secret(inline);
  const file = optionalFile(env, fileVariable);
  if (!file) throw new ConfigError(name, `${missing} (or ${fileVariable})`);
  const value = file.text.replace(/\r?\n$/, '');
  if (!value) throw new ConfigError(fileVariable, `${file.path} is empty`);
  return new Secret(value);
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = (env[name] ?? '').trim().toLowerCase();
  if (raw === '') return fallback;
  if (raw === 'true' || raw === '1' || raw === 'yes') return true;
  if (raw === 'false' || raw === '0' || raw === 'no') return false;
  throw new ConfigError(name, `expected true or false, got ${JSON.stringify(env[name])}`);
}

interface SettingFile {
  path: string;
  text: string;
}

/** Reads the file a variable names (relative paths from the working directory); undefined when unset. */
function optionalFile(env: Env, name: string, label: string = name): SettingFile | undefined {
  const given = env[name]?.trim();
  if (!given) return undefined;
  return readSettingFile(given, label);
}

function readSettingFile(given: string, label: string): SettingFile {
  const resolved = path.resolve(given);
  try {
    return { path: resolved, text: readFileSync(resolved, 'utf8') };
  } catch (error) {
    throw new ConfigError(label, `cannot read ${resolved} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

function checkCertificates(file: SettingFile, label: string): void {
  if (!file.text.includes('-----BEGIN CERTIFICATE-----'))
    throw new ConfigError(label, `${file.path} holds no PEM certificate`);
  try {
    new X509Certificate(file.text);
  } catch (error) {
    throw new ConfigError(label, `${file.path} is not a valid PEM certificate (${(error as Error).message})`);
  }
}

/** A client certificate and its key: both or neither, the key unencrypted PEM and matching the certificate. */
function checkKeyPair(
  cert: SettingFile | undefined,
  key: SettingFile | undefined,
  certLabel: string,
  keyLabel: string,
): void {
  if (!cert && !key) return;
  if (!cert) throw new ConfigError(certLabel, `is required with ${keyLabel} (a private key needs its certificate)`);
  if (!key)
    throw new ConfigError(keyLabel, `is required with ${certLabel} (a client certificate needs its private key)`);
  checkCertificates(cert, certLabel);
  let privateKey;
  try {
    privateKey = createPrivateKey(key.text);
  } catch (error) {
    // Node's message names the format problem only; it never contains key material.
    throw new ConfigError(
      keyLabel,
      `${key.path} is not an unencrypted PEM private key (${(error as NodeJS.ErrnoException).code ?? 'invalid'})`,
    );
  }
  if (!new X509Certificate(cert.text).checkPrivateKey(privateKey)) {
    throw new ConfigError(keyLabel, `${key.path} is not the private key of the certificate in ${certLabel}`);
  }
}

/** libpq's sslmode values (https://www.postgresql.org/docs/current/libpq-ssl.html). */
export type PostgresSslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

export interface PostgresTlsConfig {
  /**
   * From DATABASE_URL's `sslmode` (or node-postgres' `ssl=true|no-verify`), else PGSSLMODE; when neither
   * is set: verify-full if a root certificate is given, else disable.
   */
  mode: PostgresSslMode;
  /** PEM CA certificates (`sslrootcert` / PGSSLROOTCERT); undefined = Node's bundled public CAs. */
  ca: string | undefined;
  /** Client certificate and key (`sslcert`/`sslkey`, PGSSLCERT/PGSSLKEY): both or neither. */
  cert: string | undefined;
  key: Secret | undefined;
}

const POSTGRES_SSL_MODES: readonly PostgresSslMode[] = [
  'disable',
  'allow',
  'prefer',
  'require',
  'verify-ca',
  'verify-full',
];

/**
 * The TLS settings of DATABASE_URL as libpq reads them: URL parameters first, then the PGSSL* variables.
 * node-postgres cannot fall back from TLS to plain text, so `allow` and `prefer` connect without TLS;
 * use `require` or stronger where TLS matters.
 */
export function postgresTlsConfig(env: Env): PostgresTlsConfig {
  const params = env['DATABASE_URL'] ? new URL(firstHostUrl(env['DATABASE_URL'])).searchParams : new URLSearchParams();
  const setting = (param: string, variable: string): { value: string; label: string } | undefined => {
    const fromUrl = params.get(param);
    if (fromUrl) return { value: fromUrl, label: 'DATABASE_URL' };
    const fromEnv = env[variable]?.trim();
    return fromEnv ? { value: fromEnv, label: variable } : undefined;
  };
  const rootCert = setting('sslrootcert', 'PGSSLROOTCERT');
  const certSetting = setting('sslcert', 'PGSSLCERT');
  const keySetting = setting('sslkey', 'PGSSLKEY');
  const mode = postgresSslMode(params, env, rootCert !== undefined);
  const files = [rootCert, certSetting, keySetting].find((entry) => entry !== undefined);
  if (files && (mode.value === 'disable' || mode.value === 'allow' || mode.value === 'prefer')) {
    throw new ConfigError(
      mode.label,
      `sslmode=${mode.value} connects without TLS, but ${files.label} names certificate files; use sslmode=verify-full (or verify-ca, require)`,
    );
  }
  // sslrootcert=system (libpq 16): the platform's public CAs, which only make sense with host name checks.
  const systemRoots = rootCert?.value === 'system';
  if (systemRoots && mode.value !== 'verify-full') {
    throw new ConfigError(mode.label, `sslrootcert=system needs sslmode=verify-full, got ${mode.value}`);
  }
  const ca = rootCert && !systemRoots ? readSettingFile(rootCert.value, rootCert.label) : undefined;
  if (ca) checkCertificates(ca, rootCert!.label);
  if (mode.value === 'verify-ca' && !ca) {
    throw new ConfigError(
      mode.label,
      'sslmode=verify-ca needs a root certificate: set sslrootcert in DATABASE_URL or PGSSLROOTCERT',
    );
  }
  const cert = certSetting ? readSettingFile(certSetting.value, certSetting.label) : undefined;
  const key = keySetting ? readSettingFile(keySetting.value, keySetting.label) : undefined;
  checkKeyPair(cert, key, certSetting?.label ?? 'PGSSLCERT', keySetting?.label ?? 'PGSSLKEY');
  return { mode: mode.value, ca: ca?.text, cert: cert?.text, key: key ? new Secret(key.text) : undefined };
}

function postgresSslMode(
  params: URLSearchParams,
  env: Env,
  rootCertGiven: boolean,
): { value: PostgresSslMode; label: string } {
  const given = params.get('sslmode') ?? undefined;
  const pgStyle = params.get('ssl') ?? undefined;
  if (given !== undefined && pgStyle !== undefined)
    throw new ConfigError('DATABASE_URL', 'set either sslmode or ssl, not both');
  if (pgStyle !== undefined) {
    // node-postgres' own parameter: ssl=true verifies the server fully, ssl=no-verify encrypts only.
    const mapped: Record<string, PostgresSslMode> = {
      true: 'verify-full',
      '1': 'verify-full',
      'no-verify': 'require',
      false: 'disable',
      '0': 'disable',
    };
    const value = mapped[pgStyle];
    if (!value)
      throw new ConfigError('DATABASE_URL', `ssl: expected true, no-verify or false, got ${JSON.stringify(pgStyle)}`);
    return { value, label: 'DATABASE_URL' };
  }
  const raw = given ?? env['PGSSLMODE']?.trim();
  const label = given !== undefined ? 'DATABASE_URL' : 'PGSSLMODE';
  if (!raw) return { value: rootCertGiven ? 'verify-full' : 'disable', label };
  const value = POSTGRES_SSL_MODES.find((candidate) => candidate === raw);
  if (!value)
    throw new ConfigError(label, `sslmode: expected ${POSTGRES_SSL_MODES.join(', ')}, got ${JSON.stringify(raw)}`);
  return { value, label };
}

// ---- The cluster secret (src/config/cluster-key.ts) ----------------------------------------------

/** A secret shorter than the HMAC-SHA256 output (32 bytes) weakens the MAC (RFC 2104 section 3). */
const CLUSTER_SECRET_CHARS_MIN = 32;
const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,32}$/;
const CLUSTER_SECRET_ID_DEFAULT = 'k1';

/**
 * CLUSTER_SECRET (or CLUSTER_SECRET_FILE) with CLUSTER_SECRET_ID, and optionally CLUSTER_SECRET_PREVIOUS
 * (or _FILE) with CLUSTER_SECRET_PREVIOUS_ID. Undefined when no secret is set: commands that need it
 * (the processor, the API) call requireClusterKeys, which stops start-up naming the variable.
 */
export function clusterKeysConfig(env: Env): ClusterKeys | undefined {
  if (!env['CLUSTER_SECRET'] && !env['CLUSTER_SECRET_FILE']) {
    for (const name of ['CLUSTER_SECRET_PREVIOUS', 'CLUSTER_SECRET_PREVIOUS_FILE', 'CLUSTER_SECRET_PREVIOUS_ID']) {
      if (env[name])
        throw new ConfigError(
          name,
          'is set but CLUSTER_SECRET is not (a previous key is only accepted next to a current one)',
        );
    }
    return undefined;
  }
  const current = clusterKey(env, 'CLUSTER_SECRET', CLUSTER_SECRET_ID_DEFAULT);
  const hasPrevious = Boolean(env['CLUSTER_SECRET_PREVIOUS'] || env['CLUSTER_SECRET_PREVIOUS_FILE']);
  if (!hasPrevious && env['CLUSTER_SECRET_PREVIOUS_ID']) {
    throw new ConfigError('CLUSTER_SECRET_PREVIOUS_ID', 'is set but CLUSTER_SECRET_PREVIOUS is not');
  }
  const previous = hasPrevious ? clusterKey(env, 'CLUSTER_SECRET_PREVIOUS', undefined) : undefined;
  if (previous && previous.id === current.id) {
    throw new ConfigError(
      'CLUSTER_SECRET_PREVIOUS_ID',
      `must differ from CLUSTER_SECRET_ID (both are ${JSON.stringify(current.id)}): a MAC names the key that made it`,
    );
  }
  if (previous && previous.secret.reveal() === current.secret.reveal()) {
    throw new ConfigError('CLUSTER_SECRET_PREVIOUS', 'is the same secret as CLUSTER_SECRET');
  }
  return { current, previous };
}

function clusterKey(env: Env, name: string, idFallback: string | undefined): ClusterKey {
  const secret = secretSetting(env, name, 'is required');
  if (secret.reveal().length < CLUSTER_SECRET_CHARS_MIN) {
    throw new ConfigError(
      name,
      `expected at least ${CLUSTER_SECRET_CHARS_MIN} characters, got ${secret.reveal().length}`,
    );
  }
  const idVariable = `${name}_ID`;
  const rawId = env[idVariable]?.trim() || idFallback;
  if (rawId === undefined)
    throw new ConfigError(idVariable, `is required with ${name} (the id the old key signed with)`);
  if (!KEY_ID_PATTERN.test(rawId))
    throw new ConfigError(
      idVariable,
      `expected 1 to 32 letters, digits, ".", "_" or "-", got ${JSON.stringify(rawId)}`,
    );
  return { id: rawId, secret };
}

/** The cluster keys, or a ConfigError naming CLUSTER_SECRET for a command that cannot run without them. */
export function requireClusterKeys(keys: ClusterKeys | undefined, what: string): ClusterKeys {
  if (!keys) {
    throw new ConfigError(
      'CLUSTER_SECRET',
      `is required by ${what}: at least ${CLUSTER_SECRET_CHARS_MIN} random characters, the same on every instance ` +
        '(or CLUSTER_SECRET_FILE); e.g. `openssl rand -base64 48`',
    );
  }
  return keys;
}
