// `bankstream migrate`: brings the database schema up to date and prints what it applied.
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { createLogger } from '../../config/logger.ts';
import { MIGRATIONS_DIR, migrate } from '../../sinks/migrate.ts';
import { firstHostUrl } from '../../config/pg-hosts.ts';

export function register(program: Command): void {
  program
    .command('migrate')
    .description('apply pending SQL migrations (creates the database if it is missing)')
    .option('--dir <path>', 'migrations folder', MIGRATIONS_DIR)
    .action(async (options: { dir: string }) => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel, { component: 'migrate' });
      const result = await migrate({
        databaseUrl: config.databaseUrl,
        postgresTls: config.postgresTls,
        migrationsDir: options.dir,
        logger,
      });
      const database = new URL(firstHostUrl(config.databaseUrl)).pathname.slice(1);
      if (result.databaseCreated) console.log(`created database ${database}`);
      for (const migration of result.applied)
        console.log(`applied ${migration.file} (sha256 ${migration.checksum.slice(0, 12)})`);
      const total = result.alreadyApplied + result.applied.length;
      console.log(
        result.applied.length === 0
          ? `up to date (${total} migrations)`
          : `applied ${result.applied.length}, ${total} in total`,
      );
    });
}
