// Restore alone, A/B between source trees: changelog records for the bank's real stores (accounts,
// balances, the segmented transfers store; values shaped as the bank writes them, signed with the
// cluster secret, lz4 batches like the engine's) are written once; then engines from each tree
// (`--roots a,b`) restore them into a fresh state folder, `--repeat` times per child process, rounds
// alternating the order. Each restore reports two rates:
//   replay  records ÷ the restore itself (planning, fetches, MAC checks, value checks, LevelDB batches:
//           the time restore.ts logs as "state stores restored")
//   whole   records ÷ the time from the rebalance to every task running (group join included), as the
//           `restore` phase of `npm run bench` measures it
// and the process's CPU (user + system) per restored record over the whole window.
//
//   node bench/restore.perf.ts --records 300000 --rounds 2 --repeat 2
//   node bench/restore.perf.ts --roots /tmp/before,. --rounds 2 --repeat 2
//   node bench/restore.perf.ts --profile /tmp/prof   (a .cpuprofile per child; node bench/profile.ts <file>)
//
// Ratios measured side by side in one run are what to read; the machine is shared and noisy.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Producer } from '@platformatic/kafka';
import { pino } from 'pino';
import { dedupKey, defaultDedupSegmentIntervalMs } from '../src/bank/stores.ts';
import { loadConfig, requireClusterKeys } from '../src/config/config.ts';
import { signChangelogEntry } from '../src/kafka/record-mac.ts';
import { resetOffsets } from '../src/ops/offsets.ts';
import { ensureTopics } from '../src/ops/topics.ts';
import { PINNED_PREFIX, segmentKey } from '../src/stores/segment-layout.ts';
import { changelogTopic } from '../src/topology/changelog.ts';
import { deleteTopicsWithPrefix, prefixedEnv, uniquePrefix } from '../test/integration/support/kafka.ts';

const { values } = parseArgs({
  options: {
    roots: { type: 'string', default: '.' },
    records: { type: 'string', default: '300000' },
    partitions: { type: 'string', default: '12' },
    rounds: { type: 'string', default: '1' },
    repeat: { type: 'string', default: '2' },
    profile: { type: 'string' },
    child: { type: 'string' },
    prefix: { type: 'string' },
  },
});

interface RestoreRun {
  records: number;
  replayMs: number;
  wholeMs: number;
  cpuMicrosPerRecord: number;
}

if (values.child !== undefined) {
  const runs: RestoreRun[] = [];
  for (let i = 0; i < Number(values.repeat); i++)
    runs.push(await restoreOnce(path.resolve(values.child), values.prefix!));
  process.stdout.write(`${JSON.stringify(runs)}\n`);
  process.exit(0);
} else {
  await main();
}

async function main(): Promise<void> {
  const roots = values.roots.split(',').map((r) => path.resolve(r));
  const prefix = uniquePrefix('rst');
  const config = loadConfig(prefixedEnv(prefix, { PARTITIONS: values.partitions }));
  await ensureTopics(config);
  const results = new Map<string, RestoreRun[]>();
  try {
    const written = Date.now();
    const records = await writeChangelogs(config, Number(values.records));
    // Committed input offsets, as an engine that wrote those changelogs leaves them: a task whose stores
    // hold data and whose group has no committed offset refuses to start (offsets_missing).
    await resetOffsets(config, { group: 'processor', partition: 'all', to: 'latest', execute: true });
    console.log(`changelogs: ${records} records in ${Date.now() - written} ms (prefix ${prefix})`);
    for (let round = 0; round < Number(values.rounds); round++) {
      const order = round % 2 === 0 ? roots : [...roots].reverse();
      for (const root of order) {
        for (const run of await runChild(root, prefix)) {
          console.log(
            `round ${round} ${root}: ${run.records} records, replay ${rate(run.records, run.replayMs)}/s (${run.replayMs} ms), ` +
              `whole ${rate(run.records, run.wholeMs)}/s (${run.wholeMs} ms), CPU ${run.cpuMicrosPerRecord.toFixed(2)} µs/record`,
          );
          results.set(root, [...(results.get(root) ?? []), run]);
        }
      }
    }
  } finally {
    await deleteTopicsWithPrefix(prefix).catch(() => undefined);
  }
  const first = results.get(roots[0]!) ?? [];
  const median = (list: RestoreRun[], of: (r: RestoreRun) => number) => {
    const sorted = list.map(of).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)] ?? 0;
  };
  const replay = (r: RestoreRun) => r.records / (r.replayMs / 1000);
  const whole = (r: RestoreRun) => r.records / (r.wholeMs / 1000);
  const cpu = (r: RestoreRun) => r.cpuMicrosPerRecord;
  for (const [root, list] of results) {
    console.log(
      `${root}: medians of ${list.length}: replay ${Math.round(median(list, replay))}/s (${(median(list, replay) / median(first, replay)).toFixed(2)}×), ` +
        `whole ${Math.round(median(list, whole))}/s (${(median(list, whole) / median(first, whole)).toFixed(2)}×), ` +
        `CPU ${median(list, cpu).toFixed(2)} µs/record (${(median(list, cpu) / median(first, cpu)).toFixed(2)}×), ratios to ${roots[0]}`,
    );
  }
}

function rate(records: number, ms: number): number {
  return Math.round((records / Math.max(1, ms)) * 1000);
}

/**
 * About `total` changelog records over every partition, as a backlog of transfers leaves them before
 * compaction: per account an accounts record and balance updates; per transfer its transfers records
 * (an in-flight entry pinned, then its final entry in the live segment and the pinned entry's tombstone,
 * or a credited mark). Values are the bank's JSON shapes; every record carries its MAC header.
 */
async function writeChangelogs(config: ReturnType<typeof loadConfig>, total: number): Promise<number> {
  const keys = requireClusterKeys(config.clusterKeys, 'the restore bench');
  const producer = new Producer({
    clientId: 'bankstream-restore-perf',
    bootstrapBrokers: config.kafkaBrokers,
    compression: 'lz4',
    acks: -1,
  });
  const segment = Math.floor(Date.now() / defaultDedupSegmentIntervalMs(config.dedupRetentionMs));
  const now = Date.now();
  let written = 0;
  type Message = {
    topic: string;
    partition: number;
    key: Buffer;
    value: Buffer | undefined;
    headers: Map<Buffer, Buffer>;
  };
  let batch: Message[] = [];
  const flush = async () => {
    if (batch.length > 0) await producer.send({ messages: batch });
    batch = [];
  };
  const add = async (store: string, partition: number, key: string, value: unknown) => {
    const keyBytes = Buffer.from(key, 'utf8');
    const valueBytes = value === null ? null : Buffer.from(JSON.stringify(value), 'utf8');
    batch.push({
      topic: changelogTopic(config.appId, store),
      partition,
      key: keyBytes,
      value: valueBytes ?? undefined,
      headers: signChangelogEntry(keys, store, partition, keyBytes, valueBytes),
    });
    written++;
    if (batch.length >= 5000) await flush();
  };
  const perPartition = Math.ceil(total / config.partitions);
  const accountsPer = Math.max(1, Math.floor(perPartition / 30));
  try {
    for (let p = 0; p < config.partitions; p++) {
      let here = 0;
      for (let a = 0; a < accountsPer; a++, here++) {
        const row = {
          ownerId: `owner-${p}-${a}`,
          currency: 'EUR',
          overdraftLimit: '0',
          status: 'open',
          openedAt: new Date(now).toISOString(),
        };
        await add('accounts', p, `acc-${p}-${a}`, row);
      }
      for (let t = 0; here < perPartition; t++) {
        const from = `acc-${p}-${t % accountsPer}`;
        const to = `acc-${(p + 1) % config.partitions}-${(t * 7) % accountsPer}`;
        const transferId = `tx-${p}-${t}-0f8fad5b-d9cb-469f-a165-70867728950e`;
        const amount = String(1000 + (t % 997));
        const balance = { balance: String(10_000_000 - t), inFlight: String(t % 3 === 0 ? amount : '0') };
        await add('balances', p, from, balance);
        here++;
        const key = dedupKey(from, transferId);
        const fingerprint = `${from}|${to}|${amount}|EUR|`;
        if (t % 2 === 0) {
          const pending = { from, to, amount, currency: 'EUR', requestedAt: new Date(now).toISOString() };
          await add('transfers', p, PINNED_PREFIX + key, {
            w: now,
            v: { fingerprint, status: 'in_flight', decidedAt: now, pending },
          });
          await add('transfers', p, segmentKey(segment, key), { fingerprint, status: 'completed', decidedAt: now });
          await add('transfers', p, PINNED_PREFIX + key, null);
          here += 3;
        } else {
          await add('transfers', p, segmentKey(segment, `\u0000c${key}`), {
            fingerprint,
            status: 'completed',
            decidedAt: now,
          });
          here++;
        }
      }
    }
    await flush();
  } finally {
    await producer.close();
  }
  return written;
}

function runChild(root: string, prefix: string): Promise<RestoreRun[]> {
  return new Promise((resolve, reject) => {
    const profile = values.profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', path.resolve(values.profile)];
    const args = [
      ...profile,
      import.meta.filename,
      '--child',
      root,
      '--prefix',
      prefix,
      '--partitions',
      values.partitions,
      '--repeat',
      values.repeat,
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0) reject(new Error(`restore run exited with ${code}: ${out}`));
      else resolve(JSON.parse(line) as RestoreRun[]);
    });
  });
}

/** One engine of the tree at `root` restores every store into a fresh state folder; then it is closed. */
async function restoreOnce(root: string, prefix: string): Promise<RestoreRun> {
  const instance = (await import(path.join(root, 'src/app/instance.ts'))) as typeof import('../src/app/instance.ts');
  const configModule = (await import(
    path.join(root, 'src/config/config.ts')
  )) as typeof import('../src/config/config.ts');
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-restore-perf-'));
  const env = prefixedEnv(prefix, { PARTITIONS: values.partitions, STATE_DIR: stateDir, INSTANCE_ID: 'i0' });
  const config = configModule.loadConfig(env);
  // The restore's own time, from the line restore.ts logs when a restore ends (summed if it ran twice).
  let replayMs = 0;
  const log = pino(
    { level: 'info' },
    {
      write(line: string) {
        if (line.includes('"level":50') || line.includes('"level":60')) process.stderr.write(line);
        if (!line.includes('"state stores restored"')) return;
        replayMs += (JSON.parse(line) as { elapsedMs: number }).elapsedMs;
      },
    },
  );
  const streams = instance.createBankStreams(config, log);
  let rebalanceAt: number | undefined;
  let runningAt: number | undefined;
  let records = 0;
  streams.onStatus((status) => {
    if (status.state === 'REBALANCING') rebalanceAt ??= performance.now();
    if (status.state === 'RUNNING' && status.running.length === config.partitions) {
      runningAt ??= performance.now();
      records = status.restoredRecords;
    }
  });
  const cpuBefore = process.cpuUsage();
  await streams.start();
  while (runningAt === undefined) await new Promise((r) => setTimeout(r, 10));
  const cpu = process.cpuUsage(cpuBefore);
  await streams.close();
  await rm(stateDir, { recursive: true, force: true });
  return {
    records,
    replayMs,
    wholeMs: Math.round(runningAt - (rebalanceAt ?? runningAt)),
    cpuMicrosPerRecord: (cpu.user + cpu.system) / Math.max(1, records),
  };
}
