// `bankstream offsets reset`: moves a stopped partition's position (processor group or sink); see
// src/ops/offsets.ts and docs/operations.md ("partition stopped", "task refuses to start").
import { type Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../../config/config.ts';
import {
  type OffsetGroup,
  OffsetResetError,
  type ResetTarget,
  formatPlan,
  parseResetTarget,
  resetOffsets,
} from '../../ops/offsets.ts';

interface ResetCliOptions {
  group: OffsetGroup;
  topic?: string[];
  partition?: number;
  allPartitions?: boolean;
  to: ResetTarget;
  execute?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  const offsets = program
    .command('offsets')
    .description('inspect or move consumer positions of the processor group or the sink');
  offsets
    .command('reset')
    .description("set one partition's position (dry run unless --execute); refuses while the group has active members")
    .addOption(
      new Option('--group <group>', "whose positions: the processor's consumer group or the Postgres sink")
        .choices(['processor', 'sink'])
        .default('processor'),
    )
    .option('--topic <name...>', 'topics to reset (default: every topic the group reads)')
    .option('--partition <n>', 'the partition number', partitionNumber)
    .option(
      '--all-partitions',
      "every partition of the topics (e.g. the group's offsets expired); with earliest or latest only",
    )
    .requiredOption(
      '--to <earliest|latest|offset>',
      'the log start, the last stable offset, or an explicit next offset',
      target,
    )
    .option('--execute', 'apply the plan (without it nothing changes)')
    .option('--json', 'print the plan as JSON')
    .action(async (options: ResetCliOptions) => {
      if ((options.partition === undefined) === (options.allPartitions !== true)) {
        console.error('bankstream: give exactly one of --partition <n> and --all-partitions');
        process.exitCode = 1;
        return;
      }
      const config = loadConfig();
      const partition = options.partition ?? 'all';
      try {
        const plan = await resetOffsets(config, {
          group: options.group,
          partition,
          to: options.to,
          execute: options.execute ?? false,
          ...(options.topic ? { topics: options.topic } : {}),
        });
        console.log(
          options.json
            ? JSON.stringify(plan, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)
            : formatPlan(plan),
        );
      } catch (error) {
        if (!(error instanceof OffsetResetError)) throw error;
        console.error(`bankstream: ${error.message} (${error.code})`);
        process.exitCode = 1;
      }
    });
}

function partitionNumber(text: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new InvalidArgumentError('expected a partition number');
  return Number(text);
}

function target(text: string): ResetTarget {
  const parsed = parseResetTarget(text);
  if (parsed === undefined) throw new InvalidArgumentError('expected earliest, latest or a non-negative offset');
  return parsed;
}
