// Applies the numbered SQL files in migrations/ to the database, once each, in order.
// Every file runs in its own transaction and is recorded in schema_migrations with its checksum;
// an applied file that changed since is refused, because the schema it describes no longer
// matches the database. A session advisory lock keeps two instances from migrating at once.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { PostgresTlsConfig } from '../config/config.ts';
import type { Logger } from '../config/logger.ts';
import { firstHostUrl, withDatabase } from '../config/pg-hosts.ts';
import { PgConnectError, connectPg } from './pg-connection.ts';

/** The default migrations folder, at the repository root. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

// Any constant works as long as every migrator uses the same one; this is "bankstrm" in ASCII.
const MIGRATION_LOCK_KEY = 0x62616e6b7374726dn;
const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export interface MigrationFile {
  version: number;
  name: string;
  file: string;
  checksum: string;
  sql: string;
}

export interface MigrateOptions {
  databaseUrl: string;
  /** TLS to Postgres (Config.postgresTls); default: read from the URL and the PGSSL* variables. */
  postgresTls?: PostgresTlsConfig;
  migrationsDir?: string;
  lockWaitMs?: number;
  logger?: Logger;
}

export interface MigrateResult {
  databaseCreated: boolean;
  applied: MigrationFile[];
  alreadyApplied: number;
}

export class MigrationError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MigrationError';
    this.code = code;
  }
}

/** Applies every pending migration; a no-op when the database is up to date. */
export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const files = await readMigrations(options.migrationsDir ?? MIGRATIONS_DIR);
  const databaseCreated = await ensureDatabase(options.databaseUrl, options.logger, options.postgresTls);
  // Migrations write: only ever on a read-write server, the first of the host list that is one.
  const client = await connectPg(options.databaseUrl, options.postgresTls, {
    ...MIGRATE_CONNECT,
    client: { application_name: 'bankstream-migrate' },
  });
  try {
    await acquireLock(client, options.lockWaitMs ?? 60_000, options.logger);
    try {
      await client.query(SCHEMA_MIGRATIONS_DDL);
      const pending = await pendingMigrations(client, files);
      for (const migration of pending) await applyMigration(client, migration, options.logger);
      return { databaseCreated, applied: pending, alreadyApplied: files.length - pending.length };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]);
    }
  } finally {
    await client.end();
  }
}

const SCHEMA_MIGRATIONS_DDL = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer     PRIMARY KEY,
  name       text        NOT NULL,
  checksum   text        NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`;

/** Reads and checks the migration files: names NNNN_snake_case.sql, versions unique. */
export async function readMigrations(dir: string): Promise<MigrationFile[]> {
  const entries = (await readdir(dir)).filter((entry) => entry.endsWith('.sql')).sort();
  const migrations: MigrationFile[] = [];
  for (const file of entries) {
    const match = FILE_PATTERN.exec(file);
    if (!match)
      throw new MigrationError('migration_name_invalid', `${file}: expected a name like 0001_create_tables.sql`);
    const version = Number(match[1]);
    const previous = migrations.at(-1);
    if (previous?.version === version) {
      throw new MigrationError('migration_version_duplicate', `${previous.file} and ${file} share version ${version}`);
    }
    const bytes = await readFile(path.join(dir, file));
    const checksum = createHash('sha256').update(bytes).digest('hex');
    migrations.push({ version, name: match[2] ?? '', file, checksum, sql: bytes.toString('utf8') });
  }
  return migrations;
}

/** The files not applied yet, after checking that the applied ones are unchanged and in order. */
async function pendingMigrations(client: pg.Client, files: MigrationFile[]): Promise<MigrationFile[]> {
  const { rows } = await client.query<{ version: number; name: string; checksum: string }>(
    'SELECT version, name, checksum FROM schema_migrations ORDER BY version',
  );
  const byVersion = new Map(files.map((file) => [file.version, file]));
  for (const row of rows) {
    const file = byVersion.get(row.version);
    if (!file) {
      throw new MigrationError(
        'migration_missing',
        `migration ${formatVersion(row.version)}_${row.name} is applied but its file is gone`,
      );
    }
    if (file.checksum !== row.checksum) {
      throw new MigrationError(
        'migration_checksum_mismatch',
        `${file.file} changed after it was applied (checksum ${row.checksum.slice(0, 12)} applied, ${file.checksum.slice(0, 12)} on disk); add a new migration instead`,
      );
    }
  }
  const appliedMax = rows.at(-1)?.version ?? 0;
  const applied = new Set(rows.map((row) => row.version));
  const pending = files.filter((file) => !applied.has(file.version));
  const late = pending.find((file) => file.version < appliedMax);
  if (late) {
    throw new MigrationError(
      'migration_out_of_order',
      `${late.file} is pending but a later version (${formatVersion(appliedMax)}) is already applied`,
    );
  }
  return pending;
}

async function applyMigration(client: pg.Client, migration: MigrationFile, logger?: Logger): Promise<void> {
  await client.query('BEGIN');
  try {
    // A simple-protocol query runs every statement of the file inside this transaction.
    await client.query(migration.sql);
    await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
      migration.version,
      migration.name,
      migration.checksum,
    ]);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw new MigrationError('migration_failed', `${migration.file}: ${(error as Error).message}`, { cause: error });
  }
  logger?.info({ version: migration.version, file: migration.file }, 'migration applied');
}

/** Waits for the migration lock, polling, for at most lockWaitMs. */
async function acquireLock(client: pg.Client, lockWaitMs: number, logger?: Logger): Promise<void> {
  const deadline = Date.now() + lockWaitMs;
  let logged = false;
  for (;;) {
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [
      MIGRATION_LOCK_KEY.toString(),
    ]);
    if (rows[0]?.locked) return;
    if (Date.now() >= deadline) {
      throw new MigrationError(
        'migration_lock_timeout',
        `another migration held the lock for more than ${lockWaitMs} ms`,
      );
    }
    if (!logged) logger?.info('waiting for another instance to finish migrating');
    logged = true;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Creates the URL's database when it does not exist; returns whether it did. */
export async function ensureDatabase(
  databaseUrl: string,
  logger?: Logger,
  postgresTls?: PostgresTlsConfig,
): Promise<boolean> {
  try {
    const probe = await connectPg(databaseUrl, postgresTls, {
      ...MIGRATE_CONNECT,
      client: { application_name: 'bankstream-migrate' },
    });
    await probe.end().catch(() => undefined);
    return false;
  } catch (error) {
    if (!isMissingDatabase(error)) throw error;
  }
  const database = decodeURIComponent(new URL(firstHostUrl(databaseUrl)).pathname.replace(/^\//, ''));
  // The same servers, so the same TLS settings and the same search for the read-write one.
  const admin = await connectPg(withDatabase(databaseUrl, 'postgres'), postgresTls, {
    ...MIGRATE_CONNECT,
    client: { application_name: 'bankstream-migrate' },
  });
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
    logger?.info({ database }, 'database created');
    return true;
  } catch (error) {
    // Another instance created it between the probe and here: that is the outcome we wanted.
    const code = (error as { code?: string }).code;
    if (code === '42P04' || code === '23505') return false;
    throw error;
  } finally {
    await admin.end();
  }
}

// A failover in progress (the old primary gone, the standby not promoted yet) lasts seconds: a few
// rounds over the host list with backoff, about 15 s in all, before migrate gives up.
const MIGRATE_CONNECT = { target: 'read-write', roundsMax: 6, backoffMinMs: 500, backoffMaxMs: 4_000 } as const;

/** 3D000 on every host that answered: the database does not exist yet. */
function isMissingDatabase(error: unknown): boolean {
  if (!(error instanceof PgConnectError)) return (error as { code?: string }).code === '3D000';
  return (error.cause as { code?: string } | undefined)?.code === '3D000';
}

function formatVersion(version: number): string {
  return String(version).padStart(4, '0');
}
