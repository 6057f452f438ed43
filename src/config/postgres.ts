// PostgreSQL settings: DATABASE_URL (and the read replica), the API's circuit breaker, and TLS as libpq
// reads it (URL parameters, then the PGSSL* variables).
import { PgUrlError, firstHostUrl } from './pg-hosts.ts';
import { Secret } from './secret.ts';
import { ConfigError, type Env, checkCertificates, checkKeyPair, int, readSettingFile, str, url } from './settings.ts';

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

export function databaseConfig(env: Env): DatabaseConfig {
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
export function pgUrl(env: Env, name: string, fallback: string): string {
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
