// The one bankstream CLI: each sub-command lives in src/cli/commands/<name>.ts and exports `register(program)`.
import { Command } from 'commander';
import { ConfigError } from '../config/config.ts';
import { commands } from './commands/index.ts';

const program = new Command()
  .name('bankstream')
  .description('Exactly-once stream processing of bank transfers on Kafka, with a PostgreSQL sink and a balance API')
  .showHelpAfterError()
  .exitOverride();

for (const register of commands) register(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  const code = (error as { code?: string }).code;
  if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') process.exit(0);
  if (typeof code === 'string' && code.startsWith('commander.')) process.exit(2);
  if (error instanceof ConfigError) {
    console.error(`bankstream: invalid configuration: ${error.message}`);
    process.exit(2);
  }
  console.error(`bankstream: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
}
