// Throwaway databases for integration tests: a unique name per test, dropped afterwards.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const POSTGRES_SERVER_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A URL for a database that does not exist yet, named after the test, on `serverUrl`'s server. */
export function uniqueDatabaseUrl(label: string, serverUrl = POSTGRES_SERVER_URL): string {
  const url = new URL(serverUrl);
  url.pathname = `/bankstream_test_${label}_${randomBytes(4).toString('hex')}`;
  return url.toString();
}

/** Drops the URL's database (on `serverUrl`'s server), disconnecting whoever is still in it. */
export async function dropDatabase(databaseUrl: string, serverUrl = POSTGRES_SERVER_URL): Promise<void> {
  const name = new URL(databaseUrl).pathname.slice(1);
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

/** Runs one query against the URL's database on a short-lived connection. */
export async function query<Row extends pg.QueryResultRow>(
  databaseUrl: string,
  text: string,
  values: unknown[] = [],
): Promise<Row[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query<Row>(text, values)).rows;
  } finally {
    await client.end();
  }
}
