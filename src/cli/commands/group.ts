// `bankstream group leave`: removes static members scaled away from the processor's group (src/ops/group.ts).
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { removeStaticMembers } from '../../ops/group.ts';

const INSTANCE_ID = /^[A-Za-z0-9._-]{1,200}$/;

export function register(program: Command): void {
  const group = program.command('group').description("the processor's consumer group");
  group
    .command('leave')
    .description(
      'remove stopped static members (by INSTANCE_ID) from the group, so their partitions move at once instead of after the session timeout',
    )
    .requiredOption('--instance <id...>', 'the INSTANCE_ID of each instance scaled away')
    .action(async (options: { instance: string[] }) => {
      const bad = options.instance.filter((id) => !INSTANCE_ID.test(id));
      if (bad.length > 0) {
        console.error(`bankstream: --instance: expected letters, digits, ".", "_" or "-", got ${JSON.stringify(bad)}`);
        process.exitCode = 1;
        return;
      }
      const config = loadConfig();
      const result = await removeStaticMembers(config, options.instance);
      for (const id of result.removed) console.log(`removed ${id} from group ${config.appId}`);
      for (const id of result.absent) console.log(`${id} is not a member of group ${config.appId}; nothing to do`);
    });
}
