// Issue 20, "Done means": rolling restarts without rebalances. Three instances of the counting topology
// (test/fixtures/counting-app.ts) as child processes on the real broker, under a steady input load; one of
// them is restarted with SIGTERM then start, and with SIGKILL then start, each well within the session
// timeout. With static membership (the default) the other two see no rebalance (same generation, no new
// assignment, throughout), the restarted instance runs its own partitions again, and every input has
// exactly one output. The same restarts without static membership, in the same run, are the control: they
// rebalance the others, and the time from the signal to serving is printed side by side.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { type Child, killAll, killChild, spawnFixture } from '../../helpers/child.ts';
import { createTopics, deleteTopics, produce, readCommitted, uniqueName, waitFor } from '../../helpers/kafka.ts';
import { TEST_CLUSTER_SECRET } from '../support/kafka.ts';
import { Admin } from '@platformatic/kafka';
import { loadConfig } from '../../../src/config/config.ts';
import { removeStaticMembers } from '../../../src/ops/group.ts';
import { BROKERS } from '../../helpers/kafka.ts';

const APP = path.resolve('test/fixtures/counting-app.ts');
const PARTITIONS = 6;
const KEYS = 60;
// Room for a restart on a loaded 2-core machine (under load the new process took more than 10 s to join).
const SESSION_TIMEOUT_MS = 20_000;
const INSTANCES = ['a', 'b', 'c'] as const;
/** Input records per second while the instances restart. */
const LOAD_PER_S = 200;

interface Status {
  atMs: number;
  state: string;
  generation: number | null;
  running: number[];
  rebalances: Record<string, number>;
}

interface Output {
  id: string;
  key: string;
  sum: number;
  count: number;
}

interface Restart {
  mode: 'static' | 'dynamic';
  signal: 'SIGTERM' | 'SIGKILL';
  /** From the signal to the restarted instance running tasks again, with every partition running in the group. */
  servingMs: number;
  /** From the signal to the old process's exit, and to the new one's first assignment. */
  exitedMs: number;
  joinedMs: number | undefined;
  /** Partitions the restarted instance ran before, and after. */
  before: number[];
  after: number[];
  /** The generation of the others before the restart, and of the restarted instance's first assignment. */
  groupGeneration: number | null;
  rejoinedGeneration: number | null;
  /** How long the other two ran no task at all (their rebalances), the longer of the two. */
  othersPausedMs: number;
  /** Status changes of the other two instances between the signal and serving again (generation, assignment). */
  othersChanged: string[];
}

const created: string[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await killAll();
});

afterAll(async () => {
  await deleteTopics(created);
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

class Group {
  readonly #children = new Map<string, Child[]>();
  readonly #env: Record<string, string>;
  constructor(env: Record<string, string>) {
    this.#env = env;
  }

  start(name: string, env: Record<string, string> = {}): void {
    const child = spawnFixture(APP, { ...this.#env, ...env, INSTANCE_ID: name });
    this.#children.set(name, [...(this.#children.get(name) ?? []), child]);
  }

  current(name: string): Child {
    return this.#children.get(name)!.at(-1)!;
  }

  /** The status lines of the instance's current process. */
  statuses(name: string): Status[] {
    return parseStatuses(this.current(name).output());
  }

  last(name: string): Status | undefined {
    return this.statuses(name).at(-1);
  }

  /** Every instance running some tasks in one generation, every partition running on exactly one of them. */
  settled(names: readonly string[] = INSTANCES): boolean {
    const running = names.map((n) => this.last(n));
    if (running.some((s) => s === undefined || s.state !== 'RUNNING' || s.running.length === 0)) return false;
    if (new Set(running.map((s) => s!.generation)).size !== 1) return false;
    const all = running.flatMap((s) => s!.running).sort((x, y) => x - y);
    return all.length === PARTITIONS && all.every((p, i) => p === i);
  }

  outputs(): string {
    return [...this.#children.keys()]
      .map((n) =>
        (this.#children.get(n) ?? []).map((c, i) => `--- ${n}#${i} ---\n${c.output().slice(-3000)}`).join('\n'),
      )
      .join('\n');
  }
}

function parseStatuses(output: string): Status[] {
  const out: Status[] = [];
  for (const line of output.split('\n')) {
    const match = /^STATUS (\d+) (\{.*\})$/.exec(line);
    if (match) out.push({ atMs: Number(match[1]), ...(JSON.parse(match[2]!) as Omit<Status, 'atMs'>) });
  }
  return out;
}

/** Produces a steady load until stopped; returns how many records it sent. */
function startLoad(input: string): { stop(): Promise<number> } {
  let sent = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      const batch = [];
      for (let i = 0; i < LOAD_PER_S / 10; i++, sent++) {
        const key = `k${sent % KEYS}`;
        batch.push({
          topic: input,
          key: Buffer.from(key),
          value: Buffer.from(JSON.stringify({ id: String(sent), amount: (sent % 7) + 1 })),
          partition: partitionForKey(key, PARTITIONS),
        });
      }
      await produce(batch);
      await sleep(Math.max(0, started + 100 - Date.now()));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return sent;
    },
  };
}

async function setup(prefix: string) {
  const appId = uniqueName(prefix);
  const input = `${appId}-in`;
  const output = `${appId}-out`;
  await createTopics([
    { name: input, partitions: PARTITIONS },
    { name: output, partitions: PARTITIONS },
    { name: `${appId}-sums-changelog`, partitions: PARTITIONS, compact: true },
  ]);
  created.push(input, output, `${appId}-sums-changelog`);
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-static-'));
  dirs.push(stateDir);
  const env = {
    APP_ID: appId,
    INPUT: input,
    OUTPUT: output,
    STATE_DIR: stateDir,
    LOG_LEVEL: 'warn',
    CLUSTER_SECRET: TEST_CLUSTER_SECRET,
    SESSION_TIMEOUT_MS: String(SESSION_TIMEOUT_MS),
    // bankstream's default (the engine's is dynamic); the dynamic control overrides it.
    STATIC_MEMBERSHIP: 'true',
    PRINT_STATUS: '1',
  };
  return { appId, input, output, env };
}

interface Pending extends Omit<Restart, 'othersChanged' | 'othersPausedMs'> {
  signalledMs: number;
  /** Per other instance: how many status lines it had printed at the signal, and the last one. */
  others: Array<{ name: string; mark: number; last: Status }>;
}

/** Restarts instance `a` with the signal, then starts it again at once; measures until it serves again. */
async function restart(group: Group, mode: Restart['mode'], signal: Restart['signal']): Promise<Pending> {
  await waitFor('the group settled', async () => group.settled(), 60_000, 50);
  const before = group.last('a')!.running;
  const others = ['b', 'c'].map((n) => ({ name: n, mark: group.statuses(n).length, last: group.last(n)! }));
  const signalledMs = Date.now();
  await killChild(group.current('a'), signal);
  const exitedMs = Date.now() - signalledMs;
  group.start('a');
  await waitFor('the restarted instance serving', async () => group.settled(), 90_000, 20);
  const servingMs = Date.now() - signalledMs;
  const joined = group.statuses('a').find((st) => st.generation !== null);
  return {
    mode,
    signal,
    signalledMs,
    servingMs,
    exitedMs,
    joinedMs: joined === undefined ? undefined : joined.atMs - signalledMs,
    before,
    after: group.last('a')!.running,
    groupGeneration: others[0]!.last.generation,
    rejoinedGeneration: joined?.generation ?? null,
    others,
  };
}

/** What the other instances did from each restart's signal to the next one's (the last: until now). */
function judge(group: Group, pending: Pending[]): Restart[] {
  return pending.map(({ signalledMs: _, others, ...r }, i) => {
    const windows = others.map(({ name, mark, last }) => {
      const end = pending[i + 1]?.others.find((o) => o.name === name)?.mark;
      return { name, last, statuses: group.statuses(name).slice(mark, end) };
    });
    const othersChanged = windows.flatMap(({ name, last, statuses }) =>
      statuses
        .filter(
          (st) =>
            st.generation !== last.generation || JSON.stringify(st.rebalances) !== JSON.stringify(last.rebalances),
        )
        .map((st) => `${name}: generation ${last.generation} → ${st.generation}, running ${st.running.join(',')}`),
    );
    return { ...r, othersChanged, othersPausedMs: Math.max(...windows.map((w) => pausedMs(w.statuses))) };
  });
}

async function scenario(mode: Restart['mode']): Promise<{ restarts: Restart[]; sent: number; out: Output[] }> {
  const s = await setup(`static-${mode}`);
  const group = new Group({ ...s.env, STATIC_MEMBERSHIP: mode === 'static' ? 'true' : 'false' });
  const load = startLoad(s.input);
  try {
    for (const name of INSTANCES) group.start(name);
    const pending: Pending[] = [];
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) pending.push(await restart(group, mode, signal));
    // A static member that did not come back in time would be expired one session timeout after its
    // signal, and the group would rebalance then: watch the others until that moment has passed.
    if (mode === 'static')
      await sleep(Math.max(0, pending.at(-1)!.signalledMs + SESSION_TIMEOUT_MS + 2000 - Date.now()));
    const restarts = judge(group, pending);
    const sent = await load.stop();
    const out = await waitFor(
      `${sent} outputs`,
      async () => {
        const records = await readCommitted(s.output, PARTITIONS);
        return records.length >= sent ? records.map((r) => JSON.parse(r.value!.toString('utf8')) as Output) : undefined;
      },
      90_000,
      500,
    );
    for (const name of INSTANCES) await killChild(group.current(name), 'SIGTERM');
    return { restarts, sent, out };
  } catch (error) {
    console.log(group.outputs());
    throw error;
  } finally {
    await load.stop();
  }
}

/** Milliseconds spent with no running task, from status lines in order (a pause still open counts until now). */
function pausedMs(statuses: Status[]): number {
  let total = 0;
  let since: number | undefined;
  for (const st of statuses) {
    if (st.running.length === 0) since ??= st.atMs;
    else if (since !== undefined) {
      total += st.atMs - since;
      since = undefined;
    }
  }
  return total + (since === undefined ? 0 : Date.now() - since);
}

/** One output per input id, and per key the counts 1..n with the expected sum. */
function exactlyOnceViolations(out: Output[], sent: number): string[] {
  const problems: string[] = [];
  const ids = new Set(out.map((o) => o.id));
  if (ids.size !== out.length) problems.push(`${out.length - ids.size} duplicate outputs`);
  for (let i = 0; i < sent; i++) if (!ids.has(String(i))) problems.push(`input ${i} has no output`);
  const counts = new Map<string, number[]>();
  for (const o of out) counts.set(o.key, [...(counts.get(o.key) ?? []), o.count]);
  for (const [key, list] of counts) {
    list.sort((x, y) => x - y);
    if (list.some((c, i) => c !== i + 1)) problems.push(`${key}: counts are not 1..${list.length}`);
  }
  return problems.slice(0, 20);
}

describe('static group membership', () => {
  it('should restart an instance (SIGTERM, SIGKILL) under load without rebalancing the others, exactly once', async () => {
    const staticRun = await scenario('static');
    const dynamicRun = await scenario('dynamic');
    const rows = [...staticRun.restarts, ...dynamicRun.restarts];
    console.log(
      [
        `restart to serving, 3 instances, ${PARTITIONS} partitions, ${LOAD_PER_S} records/s, session timeout ${SESSION_TIMEOUT_MS} ms:`,
        '  restart   | static membership        | without (dynamic)',
        ...(['SIGTERM', 'SIGKILL'] as const).map((signal) => {
          const of = (mode: string) => rows.find((r) => r.mode === mode && r.signal === signal)!;
          const cell = (r: Restart) =>
            `${(r.servingMs / 1000).toFixed(1)} s, others ${r.othersChanged.length === 0 ? 'unchanged' : `rebalanced, paused ${(r.othersPausedMs / 1000).toFixed(1)} s`}`;
          return `  ${signal.padEnd(9)} | ${cell(of('static')).padEnd(24)} | ${cell(of('dynamic'))}`;
        }),
        ...rows.map(
          (r) =>
            `  ${r.mode} ${r.signal}: exited after ${r.exitedMs} ms, joined after ${r.joinedMs} ms; a ran ${r.before.join(',')} before, ${r.after.join(',')} after; others: ${r.othersChanged.join('; ') || 'no change'}`,
        ),
        `  outputs: static ${staticRun.out.length} for ${staticRun.sent} inputs, dynamic ${dynamicRun.out.length} for ${dynamicRun.sent}`,
      ].join('\n'),
    );

    for (const r of staticRun.restarts) {
      // The premise: the new process joined before the session timeout expired the old membership.
      expect(r.joinedMs, `${r.signal}: restarted and joined within the session timeout`).toBeLessThan(
        SESSION_TIMEOUT_MS,
      );
      expect(r.othersChanged, `${r.signal}: the others saw no rebalance`).toEqual([]);
      expect(r.after, `${r.signal}: the restarted instance runs its own partitions again`).toEqual(r.before);
      // It came back as the same member, in the same generation: the group did not rebalance.
      expect(r.rejoinedGeneration, `${r.signal}: rejoined in the group's generation`).toBe(r.groupGeneration);
    }
    // The control: without static membership the same restarts do rebalance the others.
    for (const r of dynamicRun.restarts) expect(r.othersChanged.length, `dynamic ${r.signal}`).toBeGreaterThan(0);
    expect(exactlyOnceViolations(staticRun.out, staticRun.sent)).toEqual([]);
    expect(exactlyOnceViolations(dynamicRun.out, dynamicRun.sent)).toEqual([]);
  }, 240_000);

  it('should stop the older process with instance_fenced when a second one joins with the same id while it is idle', async () => {
    const s = await setup('static-fence');
    const group = new Group(s.env);
    group.start('a');
    await waitFor('a running', async () => (group.last('a')?.running.length ?? 0) === PARTITIONS, 60_000, 50);
    const older = group.current('a');
    // No input: the older process commits nothing, so only the group (FENCED_INSTANCE_ID) can tell it.
    group.start('a');
    const code = await Promise.race([older.exited, sleep(4 * SESSION_TIMEOUT_MS).then(() => 'still running')]);
    expect(code, older.output()).toBe(3);
    expect(older.output()).toContain('group.instance.id');
    const newer = group.current('a');
    await waitFor('the newer one running', async () => (group.last('a')?.running.length ?? 0) === PARTITIONS, 60_000);
    await produce(
      Array.from({ length: 20 }, (_, i) => ({
        topic: s.input,
        key: Buffer.from(`k${i}`),
        value: Buffer.from(JSON.stringify({ id: String(i), amount: 1 })),
        partition: partitionForKey(`k${i}`, PARTITIONS),
      })),
    );
    const out = await waitFor(
      '20 outputs',
      async () => {
        const records = await readCommitted(s.output, PARTITIONS);
        return records.length >= 20 ? records : undefined;
      },
      60_000,
      200,
    );
    expect(out.length).toBe(20);
    expect(newer.process.exitCode).toBeNull();
    await killChild(newer, 'SIGTERM');
  }, 120_000);

  it('should give up the membership of an instance scaled away: LEAVE_GROUP_ON_CLOSE on stop, or bankstream group leave after it', async () => {
    const s = await setup('static-leave');
    const group = new Group(s.env);
    group.start('a');
    group.start('b');
    await waitFor('a and b running', async () => group.settled(['a', 'b']), 60_000, 50);
    expect(await staticMembers(s.appId)).toEqual(['a', 'b']);
    // A plain stop keeps the membership (the partitions wait for a restart)...
    await killChild(group.current('b'), 'SIGTERM');
    expect(await staticMembers(s.appId)).toEqual(['a', 'b']);
    // ...until an operator removes it: then the group rebalances and a runs every partition.
    const config = loadConfig({ APP_ID: s.appId, KAFKA_BROKERS: BROKERS.join(',') });
    expect(await removeStaticMembers(config, ['b', 'nobody'])).toEqual({ removed: ['b'], absent: ['nobody'] });
    expect(await staticMembers(s.appId)).toEqual(['a']);
    await waitFor('a running every partition', async () => group.settled(['a']), 60_000, 50);
    // An instance started to leave on stop removes itself.
    group.start('c', { LEAVE_GROUP_ON_CLOSE: 'true' });
    await waitFor('a and c running', async () => group.settled(['a', 'c']), 60_000, 50);
    await killChild(group.current('c'), 'SIGTERM');
    expect(await staticMembers(s.appId)).toEqual(['a']);
    await waitFor('a running every partition', async () => group.settled(['a']), 60_000, 50);
    await killChild(group.current('a'), 'SIGTERM');
  }, 120_000);
});

/** The group.instance.ids of the group's members, as the coordinator has them. */
async function staticMembers(groupId: string): Promise<string[]> {
  const admin = new Admin({ clientId: 'test-admin', bootstrapBrokers: BROKERS });
  try {
    const groups = await admin.describeGroups({ groups: [groupId] });
    return [...(groups.get(groupId)?.members.values() ?? [])].map((m) => m.groupInstanceId ?? '(dynamic)').sort();
  } finally {
    await admin.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
