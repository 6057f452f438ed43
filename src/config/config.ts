// Configuration from environment variables, parsed and validated in one place.
// A bad value stops start-up with a ConfigError naming the variable and what was expected.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type ClusterKey, type ClusterKeys } from './cluster-key.ts';
import { Secret } from './secret.ts';
import { OFFSET_RESET_POLICIES, type OffsetResetPolicy } from '../runtime/offset-reset.ts';

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
  /** How long a task state folder stays on disk after it was last in use here (ms). */
  stateCleanupDelayMs: number;
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
    stateCleanupDelayMs: int(env, 'STATE_CLEANUP_DELAY_MS', 600_000, 0, 30 * 24 * 3600 * 1000),
    offsetReset: str(env, 'OFFSET_RESET', 'safe', new RegExp(`^(${OFFSET_RESET_POLICIES.join('|')})$`), OFFSET_RESET_POLICIES.join(', ')) as OffsetResetPolicy,
    logLevel: str(env, 'LOG_LEVEL', 'info', new RegExp(`^(${LOG_LEVELS.join('|')})$`), LOG_LEVELS.join(', ')),
    sinkGroupId: str(env, 'SINK_GROUP_ID', `${appId}-sink`, NAME_PATTERN, 'letters, digits, ".", "_" or "-"'),
    sinkBatchRowsMax: int(env, 'SINK_BATCH_ROWS_MAX', 5000, 1, 1_000_000),
    sinkBatchMs: int(env, 'SINK_BATCH_MS', 200, 1, 60_000),
    http: httpConfig(env),
    auth: authConfig(env),
    kafkaSecurity: kafkaSecurityConfig(env),
    postgresTls: postgresTlsConfig(env),
    clusterKeys: clusterKeysConfig(env),
  };
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
  };
}

// A secret shorter than the HS256 output (32 bytes) weakens the MAC (RFC 7518 section 3.2).
const DEV_SECRET_CHARS_MIN = 32;

function authConfig(env: Env): AuthConfig {
  const jwksUrl = env['AUTH_JWKS_URL'] ? url(env, 'AUTH_JWKS_URL', '', ['https:', 'http:']) : undefined;
  const devSecret = env['AUTH_DEV_SECRET'] || undefined;
  if (jwksUrl && devSecret) throw new ConfigError('AUTH_DEV_SECRET', 'must not be set together with AUTH_JWKS_URL (dev tokens would be accepted in production)');
  if (devSecret !== undefined && devSecret.length < DEV_SECRET_CHARS_MIN) {
    throw new ConfigError('AUTH_DEV_SECRET', `expected at least ${DEV_SECRET_CHARS_MIN} characters, got ${devSecret.length}`);
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

export const KAFKA_SECURITY_PROTOCOLS: readonly KafkaSecurityProtocol[] = ['PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'];
export const KAFKA_SASL_MECHANISMS: readonly KafkaSaslMechanism[] = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'];
const KAFKA_TLS_VARIABLES = ['KAFKA_SSL_CA_FILE', 'KAFKA_SSL_CERT_FILE', 'KAFKA_SSL_KEY_FILE', 'KAFKA_SSL_REJECT_UNAUTHORIZED', 'KAFKA_SSL_VERIFY_HOSTNAME'];
const KAFKA_SASL_VARIABLES = ['KAFKA_SASL_MECHANISM', 'KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD', 'KAFKA_SASL_PASSWORD_FILE'];

/** KAFKA_SECURITY_PROTOCOL with its KAFKA_SSL_* and KAFKA_SASL_* settings, files read and checked. */
export function kafkaSecurityConfig(env: Env): KafkaSecurityConfig {
  const given = (env['KAFKA_SECURITY_PROTOCOL'] ?? '').trim().toUpperCase() || 'PLAINTEXT';
  const protocol = KAFKA_SECURITY_PROTOCOLS.find((candidate) => candidate === given);
  if (!protocol) {
    throw new ConfigError('KAFKA_SECURITY_PROTOCOL', `expected ${KAFKA_SECURITY_PROTOCOLS.join(', ')}, got ${JSON.stringify(env['KAFKA_SECURITY_PROTOCOL'])}`);
  }
  const usesTls = protocol === 'SSL' || protocol === 'SASL_SSL';
  const usesSasl = protocol === 'SASL_PLAINTEXT' || protocol === 'SASL_SSL';
  // A setting the protocol ignores is a mistake: whoever set it believes the connection is protected.
  const ignored = [...(usesTls ? [] : KAFKA_TLS_VARIABLES), ...(usesSasl ? [] : KAFKA_SASL_VARIABLES)].find((name) => env[name]);
  if (ignored) {
    const wanted = KAFKA_TLS_VARIABLES.includes(ignored) ? 'SSL or SASL_SSL' : 'SASL_PLAINTEXT or SASL_SSL';
    throw new ConfigError(ignored, `is set but KAFKA_SECURITY_PROTOCOL=${protocol} does not use it; set KAFKA_SECURITY_PROTOCOL to ${wanted}`);
  }
  return { protocol, tls: usesTls ? kafkaTlsConfig(env) : undefined, sasl: usesSasl ? kafkaSaslConfig(env, protocol) : undefined };
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
    const got = given ? `got ${JSON.stringify(env['KAFKA_SASL_MECHANISM'])}` : `required with KAFKA_SECURITY_PROTOCOL=${protocol}`;
    throw new ConfigError('KAFKA_SASL_MECHANISM', `expected ${KAFKA_SASL_MECHANISMS.join(', ')}; ${got}`);
  }
  const username = (env['KAFKA_SASL_USERNAME'] ?? '').trim();
  if (!username) throw new ConfigError('KAFKA_SASL_USERNAME', `is required with KAFKA_SECURITY_PROTOCOL=${protocol}`);
  return { mechanism, username, password: secretSetting(env, 'KAFKA_SASL_PASSWORD', `is required with KAFKA_SECURITY_PROTOCOL=${protocol}`) };
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
  if (!file.text.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(label, `${file.path} holds no PEM certificate`);
  try {
    new X509Certificate(file.text);
  } catch (error) {
    throw new ConfigError(label, `${file.path} is not a valid PEM certificate (${(error as Error).message})`);
  }
}

/** A client certificate and its key: both or neither, the key unencrypted PEM and matching the certificate. */
function checkKeyPair(cert: SettingFile | undefined, key: SettingFile | undefined, certLabel: string, keyLabel: string): void {
  if (!cert && !key) return;
  if (!cert) throw new ConfigError(certLabel, `is required with ${keyLabel} (a private key needs its certificate)`);
  if (!key) throw new ConfigError(keyLabel, `is required with ${certLabel} (a client certificate needs its private key)`);
  checkCertificates(cert, certLabel);
  let privateKey;
  try {
    privateKey = createPrivateKey(key.text);
  } catch (error) {
    // Node's message names the format problem only; it never contains key material.
    throw new ConfigError(keyLabel, `${key.path} is not an unencrypted PEM private key (${(error as NodeJS.ErrnoException).code ?? 'invalid'})`);
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

const POSTGRES_SSL_MODES: readonly PostgresSslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

/**
 * The TLS settings of DATABASE_URL as libpq reads them: URL parameters first, then the PGSSL* variables.
 * node-postgres cannot fall back from TLS to plain text, so `allow` and `prefer` connect without TLS;
 * use `require` or stronger where TLS matters.
 */
export function postgresTlsConfig(env: Env): PostgresTlsConfig {
  const params = env['DATABASE_URL'] ? new URL(env['DATABASE_URL']).searchParams : new URLSearchParams();
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
    throw new ConfigError(mode.label, `sslmode=${mode.value} connects without TLS, but ${files.label} names certificate files; use sslmode=verify-full (or verify-ca, require)`);
  }
  // sslrootcert=system (libpq 16): the platform's public CAs, which only make sense with host name checks.
  const systemRoots = rootCert?.value === 'system';
  if (systemRoots && mode.value !== 'verify-full') {
    throw new ConfigError(mode.label, `sslrootcert=system needs sslmode=verify-full, got ${mode.value}`);
  }
  const ca = rootCert && !systemRoots ? readSettingFile(rootCert.value, rootCert.label) : undefined;
  if (ca) checkCertificates(ca, rootCert!.label);
  if (mode.value === 'verify-ca' && !ca) {
    throw new ConfigError(mode.label, 'sslmode=verify-ca needs a root certificate: set sslrootcert in DATABASE_URL or PGSSLROOTCERT');
  }
  const cert = certSetting ? readSettingFile(certSetting.value, certSetting.label) : undefined;
  const key = keySetting ? readSettingFile(keySetting.value, keySetting.label) : undefined;
  checkKeyPair(cert, key, certSetting?.label ?? 'PGSSLCERT', keySetting?.label ?? 'PGSSLKEY');
  return { mode: mode.value, ca: ca?.text, cert: cert?.text, key: key ? new Secret(key.text) : undefined };
}

function postgresSslMode(params: URLSearchParams, env: Env, rootCertGiven: boolean): { value: PostgresSslMode; label: string } {
  const given = params.get('sslmode') ?? undefined;
  const pgStyle = params.get('ssl') ?? undefined;
  if (given !== undefined && pgStyle !== undefined) throw new ConfigError('DATABASE_URL', 'set either sslmode or ssl, not both');
  if (pgStyle !== undefined) {
    // node-postgres' own parameter: ssl=true verifies the server fully, ssl=no-verify encrypts only.
    const mapped: Record<string, PostgresSslMode> = { true: 'verify-full', '1': 'verify-full', 'no-verify': 'require', false: 'disable', '0': 'disable' };
    const value = mapped[pgStyle];
    if (!value) throw new ConfigError('DATABASE_URL', `ssl: expected true, no-verify or false, got ${JSON.stringify(pgStyle)}`);
    return { value, label: 'DATABASE_URL' };
  }
  const raw = given ?? env['PGSSLMODE']?.trim();
  const label = given !== undefined ? 'DATABASE_URL' : 'PGSSLMODE';
  if (!raw) return { value: rootCertGiven ? 'verify-full' : 'disable', label };
  const value = POSTGRES_SSL_MODES.find((candidate) => candidate === raw);
  if (!value) throw new ConfigError(label, `sslmode: expected ${POSTGRES_SSL_MODES.join(', ')}, got ${JSON.stringify(raw)}`);
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
      if (env[name]) throw new ConfigError(name, 'is set but CLUSTER_SECRET is not (a previous key is only accepted next to a current one)');
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
    throw new ConfigError('CLUSTER_SECRET_PREVIOUS_ID', `must differ from CLUSTER_SECRET_ID (both are ${JSON.stringify(current.id)}): a MAC names the key that made it`);
  }
  if (previous && previous.secret.reveal() === current.secret.reveal()) {
    throw new ConfigError('CLUSTER_SECRET_PREVIOUS', 'is the same secret as CLUSTER_SECRET');
  }
  return { current, previous };
}

function clusterKey(env: Env, name: string, idFallback: string | undefined): ClusterKey {
  const secret = secretSetting(env, name, 'is required');
  if (secret.reveal().length < CLUSTER_SECRET_CHARS_MIN) {
    throw new ConfigError(name, `expected at least ${CLUSTER_SECRET_CHARS_MIN} characters, got ${secret.reveal().length}`);
  }
  const idVariable = `${name}_ID`;
  const rawId = env[idVariable]?.trim() || idFallback;
  if (rawId === undefined) throw new ConfigError(idVariable, `is required with ${name} (the id the old key signed with)`);
  if (!KEY_ID_PATTERN.test(rawId)) throw new ConfigError(idVariable, `expected 1 to 32 letters, digits, ".", "_" or "-", got ${JSON.stringify(rawId)}`);
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

