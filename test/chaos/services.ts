// Private services for the chaos run, so its faults never touch anything else on the machine:
// a Kafka broker of its own (scripts/kafka.sh on another port and data folder) and a PostgreSQL
// server of its own (initdb + pg_ctl in a temporary folder, run as the postgres user when root).
import { execFile } from 'node:child_process';
import { chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A run owns its ports for its whole life: a second run on the same ports (another session, another
 * checkout) must fail at once instead of resetting the first run's broker. Returns the release function.
 */
async function claimPort(port: number): Promise<() => Promise<void>> {
  const lock = path.join(os.tmpdir(), `bankstream-private-${port}.lock`);
  try {
    await mkdir(lock);
  } catch {
    const owner = Number(await readFile(path.join(lock, 'pid'), 'utf8').catch(() => '0'));
    const recent =
      Date.now() -
        (await stat(lock)
          .then((s) => s.mtimeMs)
          .catch(() => 0)) <
      30_000;
    if ((owner > 0 && isAlive(owner)) || (owner === 0 && recent))
      throw new Error(`port ${port} belongs to another test run (pid ${owner || 'starting'}); use other ports`);
  }
  await writeFile(path.join(lock, 'pid'), String(process.pid));
  return () => rm(lock, { recursive: true, force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class PrivateKafka {
  readonly port: number;
  #release: (() => Promise<void>) | undefined;
  constructor(port: number) {
    this.port = port;
  }

  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  async #script(command: string, ...args: string[]): Promise<void> {
    await run('bash', [path.resolve('scripts/kafka.sh'), command, ...args], {
      env: { ...process.env, KAFKA_PORT: String(this.port), KAFKA_HEAP: '768m' },
      timeout: 180_000,
    });
  }

  /** A fresh broker: any data of a previous run on this port is deleted first. */
  async startFresh(): Promise<void> {
    this.#release = await claimPort(this.port);
    await this.#script('reset');
    await this.#script('start');
  }

  async stop(): Promise<void> {
    await this.#script('stop');
  }

  async start(): Promise<void> {
    await this.#script('start');
  }

  /** SIGKILL of the broker (no controlled shutdown: it recovers its logs when started again). */
  async kill(): Promise<void> {
    await this.#script('kill-node', '1');
  }

  /** Deletes the broker, only when this run owns the port (never another run's broker). */
  async destroy(): Promise<void> {
    if (!this.#release) return;
    await this.#script('reset').catch(() => undefined);
    await this.#release();
    this.#release = undefined;
  }
}

export class PrivatePostgres {
  readonly port: number;
  #dir = '';
  #bin = '';
  #release: (() => Promise<void>) | undefined;
  constructor(port: number) {
    this.port = port;
  }

  url(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async init(): Promise<void> {
    this.#release = await claimPort(this.port);
    const { stdout } = await run('bash', ['-c', 'ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1']);
    this.#bin = stdout.trim();
    if (!this.#bin) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
    this.#dir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-chaos-pg-'));
    if (process.getuid?.() === 0) await chown(this.#dir, ...(await this.#postgresIds()));
    await this.#as(path.join(this.#bin, 'initdb'), [
      '-D',
      path.join(this.#dir, 'data'),
      '-A',
      'trust',
      '-U',
      'postgres',
    ]);
    await this.start();
  }

  async start(): Promise<void> {
    const options = `-p ${this.port} -k ${this.#dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
    await this.#as(path.join(this.#bin, 'pg_ctl'), [
      '-D',
      path.join(this.#dir, 'data'),
      '-o',
      options,
      '-l',
      path.join(this.#dir, 'log'),
      '-w',
      'start',
    ]);
  }

  /** `immediate` is a crash as the sink sees it: connections cut, no shutdown checkpoint (recovery on start). */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.#as(path.join(this.#bin, 'pg_ctl'), ['-D', path.join(this.#dir, 'data'), '-m', mode, '-w', 'stop']);
  }

  /** Stops the server if it runs and deletes its folder; safe to call twice. */
  async destroy(): Promise<void> {
    if (this.#dir) {
      await this.stop('immediate').catch(() => undefined);
      await rm(this.#dir, { recursive: true, force: true });
      this.#dir = '';
    }
    await this.#release?.();
    this.#release = undefined;
  }

  async #postgresIds(): Promise<[number, number]> {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    return [uid, gid];
  }

  /** initdb refuses to run as root: run the server's tools as the postgres user then. */
  async #as(command: string, args: string[]): Promise<void> {
    if (process.getuid?.() === 0) await run('runuser', ['-u', 'postgres', '--', command, ...args], { timeout: 60_000 });
    else await run(command, args, { timeout: 60_000 });
  }
}
