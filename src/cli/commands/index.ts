import { type Command } from 'commander';

/** Every sub-command's register function; add new commands here. */
export const commands: Array<(program: Command) => void> = [];
