import type { Command } from 'commander';
import { register as acls } from './acls.ts';
import { register as bench } from './bench.ts';
import { register as dev } from './dev.ts';
import { register as group } from './group.ts';
import { register as load } from './load.ts';
import { register as migrate } from './migrate.ts';
import { register as offsets } from './offsets.ts';
import { register as reconcile } from './reconcile.ts';
import { register as sink } from './sink.ts';
import { register as start } from './start.ts';
import { register as topics } from './topics.ts';
import { register as users } from './users.ts';

/** Every sub-command's register function; add new commands here. */
export const commands: Array<(program: Command) => void> = [
  migrate,
  topics,
  start,
  sink,
  reconcile,
  load,
  dev,
  bench,
  users,
  acls,
  offsets,
  group,
];
