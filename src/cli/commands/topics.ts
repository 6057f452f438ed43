// `bankstream topics create|describe`: creates every topic up front and shows their layout.
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { createLogger } from '../../config/logger.ts';
import { TopicLayoutError, type TopicState, describeTopics, ensureTopics, layoutProblems } from '../../ops/topics.ts';

export function register(program: Command): void {
  const topics = program.command('topics').description('create or describe the Kafka topics bankstream uses');
  topics
    .command('create')
    .description('create missing topics (existing ones are left alone) and check co-partitioning')
    .action(async () => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel, { component: 'topics' });
      try {
        const result = await ensureTopics(config, { logger });
        for (const name of result.created) console.log(`created  ${name}`);
        for (const name of result.existing) console.log(`existing ${name}`);
        for (const name of result.altered) console.log(`altered  ${name} (changelog cleanup.policy / retention.ms)`);
      } catch (error) {
        exitOnLayoutError(error);
      }
    });
  topics
    .command('describe')
    .description('show each topic: role, partitions, cleanup policy, problems')
    .action(async () => {
      const config = loadConfig();
      const states = await describeTopics(config);
      printTable(states);
      const problems = layoutProblems(states, config.partitions);
      for (const problem of problems) console.error(`problem: ${problem}`);
      if (problems.length > 0) process.exitCode = 1;
    });
}

function printTable(states: TopicState[]): void {
  console.log(['topic', 'role', 'partitions', 'cleanup.policy'].join('\t'));
  for (const state of states) {
    const partitions = state.exists ? String(state.partitions) : 'missing';
    console.log([state.spec.name, state.spec.role, partitions, state.cleanupPolicy ?? '-'].join('\t'));
  }
}

function exitOnLayoutError(error: unknown): void {
  if (!(error instanceof TopicLayoutError)) throw error;
  for (const problem of error.problems) console.error(`bankstream: ${problem}`);
  process.exitCode = 1;
}
