import { cp, mkdtemp, rm, appendFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR, migrate, readMigrations } from '../../../src/sinks/migrate.ts';
import { dropDatabase, query, uniqueDatabaseUrl } from '../support/postgres.ts';

const TEST_TIMEOUT_MS = 60_000;

/** Columns, constraints and indexes of the public schema, as comparable text. */
async function schemaDump(databaseUrl: string): Promise<string[]> {
  const columns = await query<{ line: string }>(
    databaseUrl,
    `SELECT concat_ws(' ', table_name, column_name, data_type, domain_name, is_nullable, column_default) AS line
       FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`,
  );
  const constraints = await query<{ line: string }>(
    databaseUrl,
    `SELECT concat_ws(' ', conrelid::regclass::text, contypid::regtype::text, conname, pg_get_constraintdef(oid)) AS line
       FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1`,
  );
  const indexes = await query<{ line: string }>(
    databaseUrl,
    `SELECT indexdef AS line FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname`,
  );
  return [...columns, ...constraints, ...indexes].map((row) => row.line);
}

describe('migrate', () => {
  const databases: string[] = [];
  const folders: string[] = [];
  afterEach(async () => {
    for (const url of databases.splice(0)) await dropDatabase(url);
    for (const folder of folders.splice(0)) await rm(folder, { recursive: true, force: true });
  });

  it(
    'should create the database, apply every file, then apply nothing and keep the schema when run twice',
    async () => {
      const databaseUrl = uniqueDatabaseUrl('migrate');
      databases.push(databaseUrl);
      const files = await readMigrations(MIGRATIONS_DIR);

      const first = await migrate({ databaseUrl });
      const schemaAfterFirst = await schemaDump(databaseUrl);
      const second = await migrate({ databaseUrl });

      expect(first.databaseCreated).toBe(true);
      expect(first.applied.map((m) => m.file)).toEqual(files.map((m) => m.file));
      expect(second.databaseCreated).toBe(false);
      expect(second.applied).toEqual([]);
      expect(second.alreadyApplied).toBe(files.length);
      expect(await schemaDump(databaseUrl)).toEqual(schemaAfterFirst);
      // One row per outcome record (0003): the key is the row id, the record's position is unique, a transferId is not.
      expect(schemaAfterFirst.join('\n')).toContain('transactions_pkey PRIMARY KEY (id)');
      expect(schemaAfterFirst.join('\n')).toContain(
        'transactions_source_key UNIQUE (source_topic, source_partition, source_offset)',
      );
      const recorded = await query<{ version: number; checksum: string }>(
        databaseUrl,
        'SELECT version, checksum FROM schema_migrations ORDER BY version',
      );
      expect(recorded).toEqual(files.map((m) => ({ version: m.version, checksum: m.checksum })));
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should apply each file exactly once when two migrators start at the same time',
    async () => {
      const databaseUrl = uniqueDatabaseUrl('race');
      databases.push(databaseUrl);

      const [a, b] = await Promise.all([migrate({ databaseUrl }), migrate({ databaseUrl })]);

      const files = await readMigrations(MIGRATIONS_DIR);
      expect(a.applied.length + b.applied.length).toBe(files.length);
      expect([a.applied.length, b.applied.length]).toContain(0);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should refuse to run when an applied file changed',
    async () => {
      const databaseUrl = uniqueDatabaseUrl('checksum');
      databases.push(databaseUrl);
      const migrationsDir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-migrations-'));
      folders.push(migrationsDir);
      await cp(MIGRATIONS_DIR, migrationsDir, { recursive: true });
      await migrate({ databaseUrl, migrationsDir });

      const [first] = await readMigrations(migrationsDir);
      await appendFile(path.join(migrationsDir, first?.file ?? ''), '\n-- edited after it was applied\n');

      await expect(migrate({ databaseUrl, migrationsDir })).rejects.toMatchObject({
        code: 'migration_checksum_mismatch',
      });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should roll back a failing file and record nothing for it',
    async () => {
      const databaseUrl = uniqueDatabaseUrl('failing');
      databases.push(databaseUrl);
      const migrationsDir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-migrations-'));
      folders.push(migrationsDir);
      await cp(MIGRATIONS_DIR, migrationsDir, { recursive: true });
      await appendFile(
        path.join(migrationsDir, '9999_broken.sql'),
        'CREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;\n',
      );

      await expect(migrate({ databaseUrl, migrationsDir })).rejects.toMatchObject({ code: 'migration_failed' });

      const tables = await query(databaseUrl, `SELECT 1 FROM information_schema.tables WHERE table_name = 'half_done'`);
      const versions = await query<{ version: number }>(databaseUrl, 'SELECT version FROM schema_migrations');
      expect(tables).toEqual([]);
      expect(versions.map((row) => row.version)).not.toContain(9999);
    },
    TEST_TIMEOUT_MS,
  );
});
