// `bankstream start`: one instance — the bank processor (exactly-once), the Postgres sink and the API —
// until SIGTERM or SIGINT, then a graceful stop (commit what is processed, leave the group).
//
// The process ends on its own only for what waiting cannot heal (a FatalStreamsError: fenced, topics
// missing or misconfigured, authentication or authorization refused), with exit code 3 and the reason.
// A broker outage, at start or later, is waited out however long it lasts (src/kafka/retry.ts).
import type { Command } from 'commander';
import { startInstance } from '../../app/instance.ts';
import { type Config, loadConfig } from '../../config/config.ts';
import { createLogger } from '../../config/logger.ts';
import { StoppedError } from '../../kafka/retry.ts';

export function register(program: Command): void {
  program
    .command('start')
    .description('run a bankstream instance: processor, Postgres sink and HTTP API')
    .option('--no-sink', 'do not run the Postgres sink in this process (run `bankstream sink` elsewhere)')
    .option('--no-http', 'do not serve the HTTP API from this process')
    .option(
      '--leave-group',
      'leave the consumer group on stop (scale-down): its partitions move at once instead of waiting for it (LEAVE_GROUP_ON_CLOSE)',
    )
    .action(async (options: { sink: boolean; http: boolean; leaveGroup?: boolean }) => {
      const config = withLeaveGroup(loadConfig(), options.leaveGroup === true);
      const logger = createLogger(config.logLevel, { instance: config.instanceId });
      // Signals are listened to before the start: the start may wait long for the broker.
      const stopping = new AbortController();
      const signalled = new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
      void signalled.then((signal) => {
        if (!stopping.signal.aborted) logger.info({ signal }, 'stop requested');
        stopping.abort();
      });
      let instance;
      try {
        instance = await startInstance({
          config,
          logger,
          sink: options.sink,
          http: options.http,
          signal: stopping.signal,
        });
      } catch (error) {
        if (error instanceof StoppedError || stopping.signal.aborted) {
          logger.info('stopped before the start completed');
          return;
        }
        throw error;
      }
      logger.info(
        { app: config.appId, instance: config.instanceId, brokers: config.kafkaBrokers },
        'bankstream instance started',
      );
      const reason = await new Promise<NodeJS.Signals | 'fatal'>((resolve) => {
        void signalled.then(resolve);
        instance.streams.done().then(
          () => resolve('fatal'),
          () => resolve('fatal'),
        );
      });
      logger.info({ signal: reason }, 'stopping');
      try {
        await instance.close();
      } catch (error) {
        logger.error({ err: error }, 'stopped with an error');
        process.exitCode = 1;
      }
      if (reason === 'fatal') process.exitCode = 3;
    });
}

/** `--leave-group` is LEAVE_GROUP_ON_CLOSE=true for this run (a dynamic member leaves anyway). */
function withLeaveGroup(config: Config, leaveGroup: boolean): Config {
  if (!leaveGroup) return config;
  return { ...config, membership: { ...config.membership, leaveGroupOnClose: true } };
}
