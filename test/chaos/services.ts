// Private services for the chaos run, so its faults never touch anything else on the machine:
// a Kafka broker of its own (scripts/kafka.sh on another port and data folder) and a PostgreSQL
// server of its own (initdb + pg_ctl in a temporary folder, run as the postgres user when root).
import { execFile } from 'node:child_process';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export class PrivateKafka {
  readonly port: number;
  constructor(port: number) {
    this.port = port;
  }

  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  async #script(command: string): Promise<void> {
    await run('bash', [path.resolve('scripts/kafka.sh'), command], { env: { ...process.env, KAFKA_PORT: String(this.port), KAFKA_HEAP: '768m' }, timeout: 180_000 });
  }

  /** A fresh broker: any data of a previous run on this port is deleted first. */
  async startFresh(): Promise<void> {
    await this.#script('reset');
    await this.#script('start');
  }

  async stop(): Promise<void> {
    await this.#script('stop');
  }

  async start(): Promise<void> {
    await this.#script('start');
  }

  async destroy(): Promise<void> {
    await this.#script('reset').catch(() => undefined);
  }
}

export class PrivatePostgres {
  readonly port: number;
  #dir = '';
  #bin = '';
  constructor(port: number) {
    this.port = port;
  }

  url(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async init(): Promise<void> {
    const { stdout } = await run('bash', ['-c', 'ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1']);
    this.#bin = stdout.trim();
    if (!this.#bin) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
    this.#dir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-chaos-pg-'));
    if (process.getuid?.() === 0) await chown(this.#dir, ...(await this.#postgresIds()));
    await this.#as(path.join(this.#bin, 'initdb'), ['-D', path.join(this.#dir, 'data'), '-A', 'trust', '-U', 'postgres']);
    await this.start();
  }

  async start(): Promise<void> {
    const options = `-p ${this.port} -k ${this.#dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
    await this.#as(path.join(this.#bin, 'pg_ctl'), ['-D', path.join(this.#dir, 'data'), '-o', options, '-l', path.join(this.#dir, 'log'), '-w', 'start']);
  }

  async stop(): Promise<void> {
    await this.#as(path.join(this.#bin, 'pg_ctl'), ['-D', path.join(this.#dir, 'data'), '-m', 'fast', '-w', 'stop']);
  }

  async destroy(): Promise<void> {
    if (!this.#dir) return;
    await this.stop().catch(() => undefined);
    await rm(this.#dir, { recursive: true, force: true });
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
