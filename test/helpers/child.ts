// Child processes for crash tests: spawn a fixture with Node's own TypeScript support, watch its output,
// kill it with a signal, and always reap it at the end of a test.
import { type ChildProcess, spawn } from 'node:child_process';

export interface Child {
  process: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

const children = new Set<ChildProcess>();

export function spawnFixture(script: string, env: Record<string, string>, args: string[] = []): Child {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', script, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  return { process: child, output: () => out, exited };
}

export async function killChild(child: Child, signal: NodeJS.Signals): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return;
  child.process.kill(signal);
  const timer = setTimeout(() => child.process.kill('SIGKILL'), 20_000);
  await child.exited;
  clearTimeout(timer);
}

export async function killAll(): Promise<void> {
  for (const child of [...children]) child.kill('SIGKILL');
  children.clear();
}
