// Which PostgreSQL `bankstream dev` uses: the configured one (DATABASE_URL, default the local server)
// when a server answers there, else an embedded one in the dev folder.
import pg from 'pg';
import { pgConnectionConfig } from '../sinks/pg-connection.ts';
import { firstHostUrl } from '../config/pg-hosts.ts';

export type PostgresProbe = { reachable: true } | { reachable: false; reason: string };

/** Errors that mean "no server there" (as opposed to a server that answered with an error). */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);
const SQLSTATE = /^[0-9A-Z]{5}$/;
/** invalid_catalog_name: the server is there, the database is not yet (migrate creates it). */
const DATABASE_MISSING = '3D000';

/**
 * Connects once. A server that answers — even "database does not exist" — is reachable; a refused
 * or timed-out connection is not. Any other answer (bad password, no such role) is a configuration
 * error the user must see, so it is thrown rather than hidden behind an embedded server.
 */
export async function probePostgres(databaseUrl: string, timeoutMs = 3000): Promise<PostgresProbe> {
  // TLS settings in the URL and the PGSSL* variables apply, as they do for the instance.
  const client = new pg.Client({
    ...pgConnectionConfig(databaseUrl),
    connectionTimeoutMillis: timeoutMs,
    application_name: 'bankstream-dev-probe',
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return { reachable: true };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === DATABASE_MISSING) return { reachable: true };
    if (typeof code === 'string' && SQLSTATE.test(code)) {
      throw new Error(
        `PostgreSQL at ${redact(databaseUrl)} refused the connection: ${(error as Error).message} (SQLSTATE ${code})`,
        { cause: error },
      );
    }
    const reason = typeof code === 'string' && UNREACHABLE_CODES.has(code) ? code : (error as Error).message;
    return { reachable: false, reason };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The URL without its password, for messages. */
export function redact(databaseUrl: string): string {
  try {
    const url = new URL(firstHostUrl(databaseUrl));
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/** The database name of a postgres:// URL (default `bankstream`). */
export function databaseName(databaseUrl: string): string {
  const name = decodeURIComponent(new URL(firstHostUrl(databaseUrl)).pathname.slice(1));
  return name === '' ? 'bankstream' : name;
}
