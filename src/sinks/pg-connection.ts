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
import { type ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { type PostgresTlsConfig, postgresTlsConfig } from '../config/config.ts';

/** URL parameters that configure TLS; they are removed from the connection string handed to pg. */
const TLS_URL_PARAMETERS = ['sslmode', 'ssl', 'sslrootcert', 'sslcert', 'sslkey', 'uselibpqcompat'];

export interface PgConnectionConfig {
  connectionString: string;
  ssl: false | TlsConnectionOptions;
}

/** The connection string (without TLS parameters) and the `ssl` option for a pg.Client or pg.Pool. */
export function pgConnectionConfig(databaseUrl: string, tls: PostgresTlsConfig = postgresTlsConfig({ ...process.env, DATABASE_URL: databaseUrl })): PgConnectionConfig {
  return { connectionString: withoutTlsParameters(databaseUrl), ssl: pgSsl(tls) };
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

export function withoutTlsParameters(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  if (!TLS_URL_PARAMETERS.some((name) => url.searchParams.has(name))) return databaseUrl;
  for (const name of TLS_URL_PARAMETERS) url.searchParams.delete(name);
  return url.toString();
}
