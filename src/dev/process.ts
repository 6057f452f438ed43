// Small process helpers for `bankstream dev`: progress notes for a person at a terminal, and child
// commands that are awaited and whose failure names the command.
import { type SpawnOptions, spawn } from 'node:child_process';

/** Where `bankstream dev` tells what it does: one line per step, on stderr (stdout is for the summary). */
export interface DevReporter {
  note(message: string): void;
}

/** Thrown by a step when Ctrl-C came during start-up; the caller stops what was started. */
export class DevAbortedError extends Error {
  constructor() {
    super('stopped during start-up');
    this.name = 'DevAbortedError';
  }
}

export function stderrReporter(prefix = 'bankstream dev'): DevReporter {
  return { note: (message) => process.stderr.write(`${prefix}: ${message}\n`) };
}

export interface RunCommandOptions extends SpawnOptions {
  reporter: DevReporter;
  /** Added to the error when the command fails. */
  failureHint?: string;
}

/**
 * Runs a command to completion. Its output goes to our stderr unless `stdio` says otherwise. It runs
 * in its own process group (`detached`), so a Ctrl-C in the terminal does not cut it off half-way:
 * bankstream dev lets the step finish, then stops what it started.
 */
export async function runCommand(command: string, args: string[], options: RunCommandOptions): Promise<void> {
  const { reporter: _reporter, failureHint, ...spawnOptions } = options;
  const child = spawn(command, args, {
    stdio: ['ignore', process.stderr, process.stderr],
    detached: true,
    ...spawnOptions,
  });
  const code = await new Promise<number | string>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (exitCode, signal) => resolve(exitCode ?? signal ?? 'unknown'));
  });
  if (code !== 0) {
    const hint = failureHint ? ` (${failureHint})` : '';
    throw new Error(
      `${command} ${args.join(' ')} failed with ${typeof code === 'number' ? `exit code ${code}` : code}${hint}`,
    );
  }
}
