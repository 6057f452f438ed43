// `bankstream start`: one instance — the bank processor (exactly-once), the Postgres sink and the API —
// until SIGTERM or SIGINT, then a graceful stop (commit what is processed, leave the group).
import { type Command } from 'commander';
import { startInstance } from '../../app/instance.ts';
import { loadConfig } from '../../config/config.ts';
import { createLogger } from '../../config/logger.ts';

export function register(program: Command): void {
  program
    .command('start')
    .description('run a bankstream instance: processor, Postgres sink and HTTP API')
    .option('--no-sink', 'do not run the Postgres sink in this process (run `bankstream sink` elsewhere)')
    .option('--no-http', 'do not serve the HTTP API from this process')
    .action(async (options: { sink: boolean; http: boolean }) => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel, { instance: config.instanceId });
      const instance = await startInstance({ config, logger, sink: options.sink, http: options.http });
      logger.info({ app: config.appId, instance: config.instanceId, brokers: config.kafkaBrokers }, 'bankstream instance started');
      const signal = await new Promise<NodeJS.Signals | 'fatal'>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
        instance.streams.done().then(() => resolve('fatal'), () => resolve('fatal'));
      });
      logger.info({ signal }, 'stopping');
      try {
        await instance.close();
      } catch (error) {
        logger.error({ err: error }, 'stopped with an error');
        process.exitCode = 1;
      }
      if (signal === 'fatal') process.exitCode = 3;
    });
}
