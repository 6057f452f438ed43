// In-process engine throughput, A/B: one backlog of transfers is produced once, then engines from one
// or more source trees (`--roots a,b`: a checkout of another commit, with node_modules) work through
// it in turn, each in a child process with a fresh application id and state folder, rounds
// alternating the order. Prints input records (commands + credit legs) per second for each run: the
// whole backlog, and the sustained part (10 % to 90 % of the records committed), and the engine
// process's CPU time per record (user + system), which other work on the machine disturbs less.
//
//   node bench/engine.perf.ts --roots /tmp/base,. --transfers 100000 --rounds 2
//   node bench/engine.perf.ts --roots .:nomac,. --rounds 2   (same tree without, then with, the MACs of
//                                                             internal records: their cost, side by side)
//   node bench/engine.perf.ts --roots .,.+COMMIT_INTERVAL_MS=300   (same tree, engine settings apart: a root
//                                                             may end in +NAME=VALUE, more than once;
//                                                             +--flag=value is a node flag of its child)
//   node bench/engine.perf.ts --profile /tmp/prof   (a .cpuprofile per run; summarize with bench/profile.ts)
//
// A run ends when every command is in and nothing was committed for QUIET_MS_MIN or QUIET_GAPS times the
// longest gap between two commits so far, whichever is longer (on a loaded machine a commit took up to
// 3.9 s: a fixed 3 s stopped runs early). The CPU per record is read at the last commit, so the
// quiet wait after it does not count.
//
// Ratios measured side by side in one run are what to read; the machine is shared and noisy.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { loadConfig } from '../src/config/config.ts';
import { ensureTopics } from '../src/ops/topics.ts';
import { sendWithKafkaJs } from '../test/integration/bank/pipeline.ts';
import { buildWorkload } from '../test/integration/bank/workload.ts';
import { deleteTopicsWithPrefix, prefixedEnv, uniquePrefix } from '../test/integration/support/kafka.ts';

/** The quiet time that ends a run: at least QUIET_MS_MIN, or QUIET_GAPS times the longest gap between commits. */
const QUIET_MS_MIN = 10_000;
const QUIET_GAPS = 3;

const { values } = parseArgs({
  options: {
    roots: { type: 'string', default: '.' },
    transfers: { type: 'string', default: '100000' },
    accounts: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '1' },
    profile: { type: 'string' },
    child: { type: 'string' },
    prefix: { type: 'string' },
    app: { type: 'string' },
    nomac: { type: 'boolean', default: false },
    set: { type: 'string', multiple: true, default: [] },
  },
});

interface RunResult {
  records: number;
  wholeMs: number;
  sustainedPerSecond: number;
  cpuMicrosPerRecord: number;
}

if (values.child !== undefined) {
  const result = await runEngine(
    path.resolve(values.child),
    values.prefix!,
    values.app!,
    Number(values.transfers),
    values.nomac,
    settingsOf(values.set),
  );
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} else {
  await main();
}

async function main(): Promise<void> {
  // A root may end in ":nomac": that tree with the MACs of internal records turned off (the bench-only switch).
  // A root may also end in "+NAME=VALUE" settings (after any ":nomac"), for that root's engine only.
  const roots = values.roots.split(',').map((r) => {
    const [tree, ...settings] = r.split('+');
    const resolved = tree!.endsWith(':nomac')
      ? `${path.resolve(tree!.slice(0, -':nomac'.length))}:nomac`
      : path.resolve(tree!);
    return [resolved, ...settings].join('+');
  });
  const transfers = Number(values.transfers);
  const prefix = uniquePrefix('perf');
  const env = prefixedEnv(prefix, { PARTITIONS: '12' });
  const config = loadConfig(env);
  await ensureTopics(config);
  const workload = buildWorkload({ accounts: Number(values.accounts), transfers, seed: 8, prefix });
  const commands = [...workload.setup, ...workload.commands];
  const produceStarted = Date.now();
  await sendWithKafkaJs(config, commands);
  console.log(`backlog: ${commands.length} commands in ${Date.now() - produceStarted} ms (prefix ${prefix})`);
  const results = new Map<string, RunResult[]>();
  try {
    for (let round = 0; round < Number(values.rounds); round++) {
      const order = round % 2 === 0 ? roots : [...roots].reverse();
      for (const root of order) {
        const app = `${prefix}r${round}x${roots.indexOf(root)}`;
        const result = await runChild(root, prefix, app, commands.length);
        console.log(
          `round ${round} ${root}: ${result.records} records, whole ${Math.round((result.records / result.wholeMs) * 1000)}/s, sustained ${Math.round(result.sustainedPerSecond)}/s, CPU ${result.cpuMicrosPerRecord.toFixed(1)} µs/record`,
        );
        results.set(root, [...(results.get(root) ?? []), result]);
      }
    }
  } finally {
    await deleteTopicsWithPrefix(prefix).catch(() => undefined);
  }
  const first = results.get(roots[0]!) ?? [];
  const mean = (list: RunResult[], of: (r: RunResult) => number) => list.reduce((s, r) => s + of(r), 0) / list.length;
  const rate = (r: RunResult) => r.sustainedPerSecond;
  const cpu = (r: RunResult) => r.cpuMicrosPerRecord;
  for (const [root, list] of results) {
    console.log(
      `${root}: sustained mean ${Math.round(mean(list, rate))}/s over ${list.length} run(s), ratio to ${roots[0]}: ${(mean(list, rate) / mean(first, rate)).toFixed(2)}; ` +
        `CPU ${mean(list, cpu).toFixed(1)} µs/record, ratio ${(mean(list, cpu) / mean(first, cpu)).toFixed(2)}`,
    );
  }
}

function runChild(root: string, prefix: string, app: string, commands: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const profile = values.profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', path.resolve(values.profile)];
    const [base, ...settings] = root.split('+');
    const nomac = base!.endsWith(':nomac');
    const tree = nomac ? base!.slice(0, -':nomac'.length) : base!;
    const nodeFlags = settings.filter((setting) => setting.startsWith('--'));
    const args = [
      ...profile,
      ...nodeFlags,
      import.meta.filename,
      '--child',
      tree,
      '--prefix',
      prefix,
      '--app',
      app,
      '--transfers',
      String(commands),
      ...(nomac ? ['--nomac'] : []),
      ...settings.filter((setting) => !setting.startsWith('--')).flatMap((setting) => ['--set', setting]),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0) reject(new Error(`engine run exited with ${code}: ${out}`));
      else resolve(JSON.parse(line) as RunResult);
    });
  });
}

/** "NAME=VALUE" settings as environment entries (refused when malformed). */
function settingsOf(settings: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const setting of settings) {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(setting);
    if (!match) throw new Error(`a root's setting is NAME=VALUE, not ${JSON.stringify(setting)}`);
    env[match[1]!] = match[2]!;
  }
  return env;
}

/** Runs the engine of the tree at `root` over the backlog until it has been quiet (see QUIET_MS_MIN). */
async function runEngine(
  root: string,
  prefix: string,
  app: string,
  commands: number,
  nomac: boolean,
  settings: Record<string, string>,
): Promise<RunResult> {
  const instance = (await import(path.join(root, 'src/app/instance.ts'))) as typeof import('../src/app/instance.ts');
  const configModule = (await import(
    path.join(root, 'src/config/config.ts')
  )) as typeof import('../src/config/config.ts');
  const topicsModule = (await import(path.join(root, 'src/ops/topics.ts'))) as typeof import('../src/ops/topics.ts');
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-perf-'));
  const env = {
    ...prefixedEnv(prefix, { PARTITIONS: '12', STATE_DIR: stateDir, INSTANCE_ID: 'i0', ...settings }),
    APP_ID: app,
  };
  const config = configModule.loadConfig(env);
  await topicsModule.ensureTopics(config);
  let cpuBefore = process.cpuUsage();
  const commits: Array<{ atMs: number; records: number }> = [];
  let total = 0;
  let longestGapMs = 0;
  let cpuAtLastCommit: NodeJS.CpuUsage | undefined;
  const onCommit = (info: { records: number }) => {
    if (info.records === 0) return;
    total += info.records;
    const atMs = Date.now();
    longestGapMs = Math.max(longestGapMs, atMs - (commits.at(-1)?.atMs ?? atMs));
    commits.push({ atMs, records: total });
    cpuAtLastCommit = process.cpuUsage(cpuBefore);
  };
  // Trees from before the MACs take no fourth argument; `nomac` turns them off in this one.
  const streams = nomac
    ? instance.createBankStreams(config, pino({ level: 'warn' }), onCommit, { internalRecordMacs: false })
    : instance.createBankStreams(config, pino({ level: 'warn' }), onCommit);
  const started = Date.now();
  cpuBefore = process.cpuUsage();
  await streams.start();
  // Done when every command and some credit legs are in and nothing new was committed for the quiet time.
  const quietMs = () => Math.max(QUIET_MS_MIN, QUIET_GAPS * longestGapMs);
  while (total < commands || Date.now() - (commits.at(-1)?.atMs ?? Date.now()) < quietMs())
    await new Promise((r) => setTimeout(r, 200));
  const cpu = cpuAtLastCommit!;
  await streams.close();
  await rm(stateDir, { recursive: true, force: true });
  const at = (share: number) => commits.find((c) => c.records >= total * share)!;
  const low = at(0.1);
  const high = at(0.9);
  return {
    records: total,
    wholeMs: commits.at(-1)!.atMs - started,
    sustainedPerSecond: ((high.records - low.records) / Math.max(1, high.atMs - low.atMs)) * 1000,
    cpuMicrosPerRecord: (cpu.user + cpu.system) / total,
  };
}
