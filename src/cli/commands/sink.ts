// `bankstream sink`: runs the Postgres sink alone until SIGTERM or SIGINT, then stops cleanly
// (writes the pending batch, leaves the consumer group, closes connections).
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { createLogger } from '../../config/logger.ts';
import { PostgresSink } from '../../sinks/postgres-sink.ts';

export function register(program: Command): void {
  program
    .command('sink')
    .description('write transaction outcomes and audit events from Kafka into PostgreSQL, exactly once')
    .action(async () => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel, { component: 'sink', instance: config.instanceId });
      const sink = new PostgresSink({ config, logger });
      const stopped = new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
      // The start waits for the broker as long as it is down (src/kafka/retry.ts); a signal meanwhile stops it.
      const starting = sink.start().then(() => 'started' as const);
      const first = await Promise.race([starting, stopped]);
      if (first !== 'started') {
        logger.info({ signal: first }, 'stopping the sink before its start completed');
        await sink.stop();
        await starting.catch(() => undefined);
        return;
      }
      logger.info(
        { group: config.sinkGroupId, topics: [config.topics.completed, config.topics.failed, config.topics.audit] },
        'sink started',
      );
      const signal = await stopped;
      logger.info({ signal }, 'stopping the sink');
      await sink.stop();
      logger.info(sink.status(), 'sink status at exit');
    });
}
