// A private PostgreSQL primary and streaming replica, from the server binaries on the machine (initdb,
// pg_ctl, pg_basebackup -R), on their own ports and in a temporary folder: for failover tests and for
// trying a replica without Docker (see docs/operations.md "Running with a replica"). Never touches the
// machine's own PostgreSQL. As root, the server tools run as the postgres user (initdb refuses root).
import { execFile } from 'node:child_process';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);
const TOOL_TIMEOUT_MS = 120_000;
const KILL_WAIT_MS = 10_000;

async function isRunning(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // Field 3 (after the parenthesised command name) is the state; Z is a zombie: dead, not reaped.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return stat !== '' && state !== 'Z' && state !== 'X';
}

export interface PgNode {
  name: 'a' | 'b';
  port: number;
  dataDir: string;
}

export class PrivatePostgresPair {
  readonly primary: PgNode;
  readonly replica: PgNode;
  #dir = '';
  #bin = '';

  /** Two consecutive ports: the primary on `port`, the replica on `port + 1`. */
  constructor(port: number) {
    this.primary = { name: 'a', port, dataDir: '' };
    this.replica = { name: 'b', port: port + 1, dataDir: '' };
  }

  /** A libpq-style URL naming both servers; read-write finds whichever is the primary now. */
  url(database: string, targetSessionAttrs = 'read-write'): string {
    return `postgres://postgres@127.0.0.1:${this.primary.port},127.0.0.1:${this.replica.port}/${database}?target_session_attrs=${targetSessionAttrs}`;
  }

  nodeUrl(node: PgNode, database: string): string {
    return `postgres://postgres@127.0.0.1:${node.port}/${database}`;
  }

  /** initdb the primary, start it, clone it with pg_basebackup -R (standby.signal + primary_conninfo), start the replica. */
  async init(): Promise<void> {
    const { stdout } = await run('bash', ['-c', 'ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1']);
    this.#bin = stdout.trim();
    if (!this.#bin) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
    this.#dir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-pg-pair-'));
    if (process.getuid?.() === 0) await chown(this.#dir, ...(await postgresIds()));
    this.primary.dataDir = path.join(this.#dir, 'a');
    this.replica.dataDir = path.join(this.#dir, 'b');
    await this.#as('initdb', ['-D', this.primary.dataDir, '-A', 'trust', '-U', 'postgres']);
    await this.start(this.primary);
    await this.#as('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(this.primary.port),
      '-U',
      'postgres',
      '-D',
      this.replica.dataDir,
      '-R',
      '-X',
      'stream',
      '-c',
      'fast',
    ]);
    await this.start(this.replica);
  }

  /** Starts a stopped or killed server (after a kill, a few tries: the old socket and lock may linger a moment). */
  async start(node: PgNode, tries = 1): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#startOnce(node);
        return;
      } catch (error) {
        if (attempt >= tries) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  async #startOnce(node: PgNode): Promise<void> {
    const options = [
      `-p ${node.port}`,
      `-k ${this.#dir}`,
      '-c listen_addresses=127.0.0.1',
      '-c fsync=off',
      '-c wal_level=replica',
      '-c max_wal_senders=4',
      '-c hot_standby=on',
      '-c wal_receiver_status_interval=1s',
      `-c cluster_name=bankstream-${node.name}`,
    ].join(' ');
    await this.#as('pg_ctl', [
      '-D',
      node.dataDir,
      '-o',
      options,
      '-l',
      path.join(this.#dir, `${node.name}.log`),
      '-w',
      'start',
    ]);
  }

  /** The server process and every backend of it, SIGKILLed: a machine that dies, no shutdown checkpoint. */
  async kill(node: PgNode): Promise<void> {
    const pid = Number((await readFile(path.join(node.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    if (!(pid > 0)) throw new Error(`no postmaster pid for ${node.name}`);
    const children = await run('ps', ['-o', 'pid=', '--ppid', String(pid)]).then(
      (r) =>
        r.stdout
          .split('\n')
          .map(Number)
          .filter((n) => n > 0),
      () => [] as number[],
    );
    for (const target of [pid, ...children]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    // Gone means the port and the shared memory are free for a restart (a zombie counts as gone).
    const deadline = Date.now() + KILL_WAIT_MS;
    while ((await Promise.all([pid, ...children].map(isRunning))).some(Boolean)) {
      if (Date.now() > deadline) throw new Error(`the processes of ${node.name} did not die`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** pg_ctl promote: the replica leaves recovery and takes writes. */
  async promote(node: PgNode): Promise<void> {
    await this.#as('pg_ctl', ['-D', node.dataDir, '-w', 'promote']);
  }

  /**
   * Cuts the replica off the primary's WAL stream (primary_conninfo emptied, reloaded): from now on
   * it falls behind, as an asynchronous standby does when the network or its disk is slow. Unlike
   * pg_wal_replay_pause(), promotion cannot catch up afterwards: the WAL never arrived.
   */
  async detachReplica(): Promise<void> {
    await this.sql(this.replica, "ALTER SYSTEM SET primary_conninfo = ''");
    await this.sql(this.replica, 'SELECT pg_reload_conf()');
  }

  async sql<R extends pg.QueryResultRow>(
    node: PgNode,
    text: string,
    values: unknown[] = [],
    database = 'postgres',
  ): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.nodeUrl(node, database), connectionTimeoutMillis: 5_000 });
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Waits until the replica has replayed everything the primary wrote so far. */
  async waitReplicaCaughtUp(timeoutMs = 30_000): Promise<void> {
    const [{ lsn } = { lsn: '' }] = await this.sql<{ lsn: string }>(
      this.primary,
      'SELECT pg_current_wal_lsn()::text AS lsn',
    );
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [row] = await this.sql<{ done: boolean }>(
        this.replica,
        'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done',
        [lsn],
      );
      if (row?.done) return;
      if (Date.now() > deadline) throw new Error('the replica did not catch up');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Stops whatever still runs (immediate mode: nothing to keep) and deletes the folder. */
  async destroy(): Promise<void> {
    if (!this.#dir) return;
    for (const node of [this.primary, this.replica]) {
      await this.#as('pg_ctl', ['-D', node.dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
    }
    await rm(this.#dir, { recursive: true, force: true });
    this.#dir = '';
  }

  async #as(tool: string, args: string[]): Promise<void> {
    const command = path.join(this.#bin, tool);
    if (process.getuid?.() === 0)
      await run('runuser', ['-u', 'postgres', '--', command, ...args], { timeout: TOOL_TIMEOUT_MS });
    else await run(command, args, { timeout: TOOL_TIMEOUT_MS });
  }
}

/** A random even port in [from, to) whose pair (port, port + 1) is free on 127.0.0.1 now. */
export async function freePortPair(from: number, to: number): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const port = from + 2 * Math.floor(Math.random() * Math.floor((to - from) / 2));
    if ((await canListen(port)) && (await canListen(port + 1))) return port;
  }
  throw new Error(`no free port pair between ${from} and ${to}`);
}

/** A random port in [from, to) that is free on 127.0.0.1 now. */
export async function freePort(from: number, to: number): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const port = from + Math.floor(Math.random() * (to - from));
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port between ${from} and ${to}`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function postgresIds(): Promise<[number, number]> {
  const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
  return [uid, gid];
}
