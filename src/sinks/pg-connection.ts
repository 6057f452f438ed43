// node-postgres connection settings with libpq's TLS semantics (sslmode, sslrootcert, sslcert, sslkey in
// DATABASE_URL, or PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY; parsed and checked at start in
// src/config/config.ts). Every pg.Client of bankstream is built from pgConnectionConfig.
//
// node-postgres would read the TLS parameters of the URL itself, with different rules (sslmode=require
// verifies the host name there, not in libpq), and its parsed URL overrides an explicit `ssl` option.
// So the TLS parameters are taken out of the URL and passed as `ssl`, resolved here:
//
//   disable, allow, prefer  no TLS (node-postgres cannot fall back from TLS to plain text)
//   require                 TLS; with a root certificate the chain is verified (libpq: like verify-ca)
//   verify-ca               TLS, chain verified against the root certificate, host name not checked
//   verify-full             TLS, chain and host name verified (root certificate, or Node's public CAs)
//
// Several hosts (libpq style, src/config/pg-hosts.ts): connectPg tries them in order and keeps the first
// one that matches the wanted session (target_session_attrs of the URL, or the caller's: writers always
// ask for read-write), checked with `SHOW transaction_read_only` after connecting, as libpq does. A
// writer is therefore never left on a read-only server (a standby, or a primary in read-only mode): it
// gets PgConnectError NO_WRITABLE_SERVER naming each host and why it was passed over.
import { setTimeout as delay } from 'node:timers/promises';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import pg from 'pg';
import { type PostgresTlsConfig, postgresTlsConfig } from '../config/config.ts';
import { type TargetSessionAttrs, firstHostUrl, parsePgHosts } from '../config/pg-hosts.ts';

/** URL parameters that configure TLS; they are removed from the connection string handed to pg. */
const TLS_URL_PARAMETERS = ['sslmode', 'ssl', 'sslrootcert', 'sslcert', 'sslkey', 'uselibpqcompat'];

export interface PgConnectionConfig {
  connectionString: string;
  ssl: false | TlsConnectionOptions;
}

/** The connection string (without TLS parameters) and the `ssl` option for a pg.Client or pg.Pool. */
// With a host list: the FIRST host only (for a pg.Pool, or a caller that does not fail over); use connectPg to fail over.
export function pgConnectionConfig(
  databaseUrl: string,
  tls: PostgresTlsConfig = postgresTlsConfig({ ...process.env, DATABASE_URL: databaseUrl }),
): PgConnectionConfig {
  return { connectionString: withoutTlsParameters(firstHostUrl(databaseUrl)), ssl: pgSsl(tls) };
}

/** One connection config per host of the URL, in the URL's order. */
export function pgConnectionConfigs(
  databaseUrl: string,
  tls: PostgresTlsConfig = postgresTlsConfig({ ...process.env, DATABASE_URL: databaseUrl }),
): Array<PgConnectionConfig & { address: string }> {
  const ssl = pgSsl(tls);
  return parsePgHosts(databaseUrl).hosts.map((host) => ({
    address: host.address,
    connectionString: withoutTlsParameters(host.url),
    ssl,
  }));
}

export type PgConnectErrorCode = 'NO_WRITABLE_SERVER' | 'NO_MATCHING_SERVER' | 'UNREACHABLE' | 'REFUSED';

export class PgConnectError extends Error {
  readonly code: PgConnectErrorCode;
  /** Per host: why it was not used. */
  readonly attempts: Array<{ address: string; reason: string }>;
  /** A server refused for a reason retrying does not fix (SQLSTATE other than classes 08 and 57); the cause is that error. */
  readonly definitive: boolean;
  constructor(
    code: PgConnectErrorCode,
    message: string,
    attempts: Array<{ address: string; reason: string }>,
    options?: { cause?: unknown; definitive?: boolean },
  ) {
    super(message, { cause: options?.cause });
    this.name = 'PgConnectError';
    this.code = code;
    this.attempts = attempts;
    this.definitive = options?.definitive ?? false;
  }
}

export interface ConnectPgOptions {
  /** Overrides the URL's target_session_attrs; writers pass 'read-write'. */
  target?: TargetSessionAttrs;
  /** Rounds over the whole host list (default 1); between rounds a doubling pause. */
  roundsMax?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Every other pg.Client option (application_name, timeouts). */
  client?: Omit<pg.ClientConfig, 'connectionString' | 'ssl'>;
}

/**
 * A connected pg.Client on the first host that is up and matches the target session, trying the list
 * up to roundsMax times with backoff. Throws PgConnectError; the last round's per-host reasons say why.
 */
export async function connectPg(
  databaseUrl: string,
  tls: PostgresTlsConfig | undefined,
  options: ConnectPgOptions = {},
): Promise<pg.Client> {
  const target = options.target ?? parsePgHosts(databaseUrl).targetSessionAttrs;
  const hosts = pgConnectionConfigs(databaseUrl, tls);
  const roundsMax = Math.max(1, options.roundsMax ?? 1);
  let backoffMs = options.backoffMinMs ?? 250;
  let failure: PgConnectError | undefined;
  for (let round = 1; round <= roundsMax; round++) {
    const attempt = await connectRound(hosts, target, options.client ?? {});
    if (attempt instanceof pg.Client) return attempt;
    failure = attempt;
    // A server answered "no such database" or "wrong password": waiting does not change that.
    if (attempt.definitive) break;
    if (round < roundsMax) {
      await delay(backoffMs);
      backoffMs = Math.min(backoffMs * 2, options.backoffMaxMs ?? 5_000);
    }
  }
  throw failure ?? new PgConnectError('UNREACHABLE', 'no PostgreSQL host to connect to', []);
}

/** One pass over the hosts; 'prefer-standby' takes a primary only when no standby answered. */
async function connectRound(
  hosts: Array<PgConnectionConfig & { address: string }>,
  target: TargetSessionAttrs,
  client: Omit<pg.ClientConfig, 'connectionString' | 'ssl'>,
): Promise<pg.Client | PgConnectError> {
  const attempts: Array<{ address: string; reason: string }> = [];
  let fallback: pg.Client | undefined;
  let lastError: unknown;
  let definitiveError: unknown;
  let mismatched = 0;
  for (const host of hosts) {
    const db = new pg.Client({ ...client, connectionString: host.connectionString, ssl: host.ssl });
    // A connection error must never crash the process: not after connect() failed, and not on the client
    // returned, which keeps this listener (its caller may add its own later, or never: migrations and the
    // ops commands do not). node-postgres emits 'error' when the server drops the connection, and the
    // query in flight, or the next one, rejects with its own error; that is what callers handle.
    db.on('error', () => undefined);
    try {
      await db.connect();
      const session = await sessionOf(db, target);
      const verdict = matches(target, session);
      if (verdict === true) {
        await fallback?.end().catch(() => undefined);
        return db;
      }
      if (target === 'prefer-standby' && !fallback) {
        fallback = db;
        continue;
      }
      mismatched += 1;
      attempts.push({ address: host.address, reason: verdict });
      await db.end().catch(() => undefined);
    } catch (error) {
      if (isDefinitive(error)) definitiveError ??= error;
      lastError = error;
      attempts.push({
        address: host.address,
        reason: error instanceof Error ? error.message || error.name : String(error),
      });
      await db.end().catch(() => undefined);
    }
  }
  if (fallback) return fallback;
  const listed = attempts.map((a) => `${a.address}: ${a.reason}`).join('; ');
  if (definitiveError !== undefined) {
    return new PgConnectError('REFUSED', `PostgreSQL refused the connection (${listed})`, attempts, {
      cause: definitiveError,
      definitive: true,
    });
  }
  if (mismatched === 0)
    return new PgConnectError('UNREACHABLE', `no PostgreSQL host answered (${listed})`, attempts, { cause: lastError });
  if (target === 'read-write' || target === 'primary') {
    return new PgConnectError(
      'NO_WRITABLE_SERVER',
      `no ${target} PostgreSQL server among the hosts (${listed}); not writing to a read-only one`,
      attempts,
      { cause: lastError },
    );
  }
  return new PgConnectError(
    'NO_MATCHING_SERVER',
    `no PostgreSQL server matching target_session_attrs=${target} (${listed})`,
    attempts,
    { cause: lastError },
  );
}

/** An answer of the server retrying will not change: not a connection exception (08), not "starting up / shutting down" (57). */
function isDefinitive(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('08') && !code.startsWith('57');
}

interface Session {
  readOnly: boolean;
  standby: boolean;
}

async function sessionOf(db: pg.Client, target: TargetSessionAttrs): Promise<Session> {
  if (target === 'any') return { readOnly: false, standby: false };
  const { rows } = await db.query<{ read_only: string; standby: boolean }>(
    "SELECT current_setting('transaction_read_only') AS read_only, pg_is_in_recovery() AS standby",
  );
  return { readOnly: rows[0]?.read_only === 'on', standby: rows[0]?.standby === true };
}

/** libpq's rules (https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-TARGET-SESSION-ATTRS). */
function matches(target: TargetSessionAttrs, session: Session): true | string {
  switch (target) {
    case 'any':
      return true;
    case 'read-write':
      return session.readOnly
        ? session.standby
          ? 'a standby (in recovery), read-only'
          : 'read-only (default_transaction_read_only)'
        : true;
    case 'read-only':
      return session.readOnly ? true : 'read-write';
    case 'primary':
      return session.standby ? 'a standby (in recovery)' : true;
    case 'standby':
    case 'prefer-standby':
      return session.standby ? true : 'not a standby';
  }
}

export function pgSsl(tls: PostgresTlsConfig): false | TlsConnectionOptions {
  if (tls.mode === 'disable' || tls.mode === 'allow' || tls.mode === 'prefer') return false;
  const options: TlsConnectionOptions = { minVersion: 'TLSv1.2' };
  if (tls.ca !== undefined) options.ca = tls.ca;
  if (tls.cert !== undefined) options.cert = tls.cert;
  if (tls.key !== undefined) options.key = tls.key.reveal();
  const verifyChain = tls.mode !== 'require' || tls.ca !== undefined;
  options.rejectUnauthorized = verifyChain;
  if (tls.mode !== 'verify-full') options.checkServerIdentity = () => undefined;
  return options;
}

/** The TLS parameters removed from a SINGLE-host URL (see pgConnectionConfigs for host lists). */
export function withoutTlsParameters(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  if (!TLS_URL_PARAMETERS.some((name) => url.searchParams.has(name))) return databaseUrl;
  for (const name of TLS_URL_PARAMETERS) url.searchParams.delete(name);
  return url.toString();
}

/** A connection-level failure (no answer, or "cannot connect now"): another host may answer; an SQL error would not change. */
export function isConnectionFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return true;
  return code.startsWith('08') || code.startsWith('57');
}

/**
 * A pg.Pool over a libpq-style host list: node-postgres pools take one host, so this keeps one pool on
 * the host in use and moves to the next host when a query fails at the connection level. With
 * target read-write or primary, a host found to be a standby is passed over too. Bounded: one pass
 * over the list per query.
 */
export class FailoverPool {
  readonly #hosts: Array<PgConnectionConfig & { address: string }>;
  readonly #options: Omit<pg.PoolConfig, 'connectionString' | 'ssl'>;
  readonly #target: TargetSessionAttrs;
  readonly #onError: (error: Error) => void;
  #index = 0;
  #pool: pg.Pool;
  #checked: boolean;

  constructor(
    databaseUrl: string,
    tls: PostgresTlsConfig | undefined,
    options: Omit<pg.PoolConfig, 'connectionString' | 'ssl'>,
    onError: (error: Error) => void,
  ) {
    this.#hosts = pgConnectionConfigs(databaseUrl, tls);
    this.#target = parsePgHosts(databaseUrl).targetSessionAttrs;
    this.#options = options;
    this.#onError = onError;
    this.#pool = this.#open();
    this.#checked = this.#hosts.length === 1 || !needsPrimary(this.#target);
  }

  /** The pool of the host in use now (for callers that need a pg.Pool). */
  get pool(): pg.Pool {
    return this.#pool;
  }

  get address(): string {
    return this.#hosts[this.#index]?.address ?? '';
  }

  async query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    let lastError: unknown;
    for (let tried = 0; tried < this.#hosts.length; tried++) {
      try {
        if (!this.#checked) await this.#checkPrimary();
        return await this.#pool.query<R>(text, values);
      } catch (error) {
        if (!isConnectionFailure(error) || this.#hosts.length === 1) throw error;
        lastError = error;
        this.#next();
      }
    }
    throw lastError;
  }

  async end(): Promise<void> {
    await this.#pool.end();
  }

  async #checkPrimary(): Promise<void> {
    const { rows } = await this.#pool.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby');
    if (rows[0]?.standby) throw Object.assign(new Error(`${this.address} is a standby`), { code: '08000' });
    this.#checked = true;
  }

  #next(): void {
    const old = this.#pool;
    void old.end().catch(() => undefined);
    this.#index = (this.#index + 1) % this.#hosts.length;
    this.#pool = this.#open();
    this.#checked = !needsPrimary(this.#target);
  }

  #open(): pg.Pool {
    const host = this.#hosts[this.#index];
    const pool = new pg.Pool({ ...this.#options, connectionString: host?.connectionString, ssl: host?.ssl ?? false });
    pool.on('error', this.#onError);
    return pool;
  }
}

function needsPrimary(target: TargetSessionAttrs): boolean {
  return target === 'read-write' || target === 'primary';
}
