// Dedup retention under a simulated clock: `node bench/dedup-retention.bench.ts [--rate N] [--retention-s N] [--periods N]`.
// Drives the bank processor (its real topology, TaskGraph and LevelDB task stores, as one instance's
// tasks run it, without Kafka) through more than one dedup retention period at >= 20,000 new
// transferIds/s of simulated time, and reports over time: the transfers store's entries and bytes, the
// size its changelog keeps (compact,delete with the planned retention.ms, modelled), and the time of
// every expiry step (max, p99), which the processing loop waits for. Writes bench/results/dedup-retention-<date>.json.
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { partitionForKey } from '../src/kafka/partitioner.ts';
import { DEFAULT_EXPIRY_BOUNDS } from '../src/bank/expiry.ts';
import { buildBankTopology } from '../src/bank/topology.ts';
import { LevelTaskStore } from '../src/stores/level-store.ts';
import type { TaskStore } from '../src/stores/types.ts';
import { SegmentedKeyValueStore } from '../src/stores/segmented-store.ts';
import { type InputRecord, type OutputRecord, TaskGraph } from '../src/topology/task-graph.ts';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '20000' },
    'retention-s': { type: 'string', default: '4' },
    periods: { type: 'string', default: '3' },
    partitions: { type: 'string', default: '4' },
    'batch-records': { type: 'string', default: '2000' },
    out: { type: 'string' },
    note: {
      type: 'string',
      default: 'shared 2-core machine; other sessions may run tests at the same time (see the load averages)',
    },
  },
});
const RATE_PER_S = Number(args.rate);
const RETENTION_MS = Number(args['retention-s']) * 1000;
const SEGMENT_MS = RETENTION_MS / 2;
const PERIODS = Number(args.periods);
const PARTITIONS = Number(args.partitions);
const BATCH_RECORDS = Number(args['batch-records']);
/** Simulated time between two samples of the sizes. */
const SAMPLE_EVERY_MS = 1_000;
const ACCOUNTS_PER_TASK = 100;
const START_MS = Date.UTC(2026, 0, 1);
const CHANGELOG_RETENTION_MS = SegmentedKeyValueStore.changelogRetentionMs(RETENTION_MS, SEGMENT_MS);
const TOPICS = {
  input: 'in',
  credits: 'credits',
  completed: 'completed',
  failed: 'failed',
  audit: 'audit',
  dlq: 'dlq',
};

let nowMs = START_MS;
const expirySteps: number[] = [];
let expiryStepMaxMs = 0;
let purgedTotal = 0;
let stepsLeavingCallInFlight = 0;
/** Controls for what the machine does to any await: GC pauses, and a 1 ms timer awaited before each batch's step. */
const gcPauses: { startMs: number; durationMs: number }[] = [];
const timerLatenessMs: number[] = [];
/** Every punctuation (the expiry step and its callback) as an interval of performance.now(), to subtract GC pauses from. */
const punctuations: { startMs: number; durationMs: number }[] = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcPauses.push({ startMs: entry.startTime, durationMs: entry.duration });
}).observe({ entryTypes: ['gc'] });

/** Each punctuation's time minus the GC pauses that overlapped it: what the step itself held the loop. */
function punctuationsWithoutGcMs(): number[] {
  return punctuations.map(({ startMs, durationMs }) => {
    let gcMs = 0;
    for (const gc of gcPauses) {
      const overlap = Math.min(startMs + durationMs, gc.startMs + gc.durationMs) - Math.max(startMs, gc.startMs);
      if (overlap > 0) gcMs += overlap;
    }
    return Math.max(0, durationMs - gcMs);
  });
}
/** The view's own count of its entries per task (ExpiryStepResult.storeEntries), from its latest step. */
const viewEntries = new Map<number, number>();
const topology = buildBankTopology({
  topics: TOPICS,
  dedupRetentionMs: RETENTION_MS,
  punctuateIntervalMs: 100,
  restoreClock: () => nowMs,
  onExpiryStep: (result, partition) => {
    expirySteps.push(result.durationMs);
    expiryStepMaxMs = Math.max(expiryStepMaxMs, result.durationMs);
    purgedTotal += result.purged;
    if (result.inFlight) stepsLeavingCallInFlight++;
    if (result.storeEntries !== undefined) viewEntries.set(partition, result.storeEntries);
  },
});

/** The transfers changelog as the broker keeps it: latest record per key, younger than retention.ms. */
class ChangelogModel {
  readonly #latest = new Map<string, { timestampMs: number; bytes: number }>();
  appended = 0;
  bytesAppended = 0;
  append(key: string, value: Buffer | null, timestampMs: number): void {
    const bytes = Buffer.byteLength(key) + (value?.length ?? 0);
    this.appended++;
    this.bytesAppended += bytes;
    this.#latest.delete(key);
    this.#latest.set(key, { timestampMs, bytes });
  }
  /** Time retention: the map is in append order, so the oldest records are first. */
  retain(nowMs: number): { records: number; bytes: number } {
    for (const [key, record] of this.#latest) {
      if (record.timestampMs >= nowMs - CHANGELOG_RETENTION_MS) break;
      this.#latest.delete(key);
    }
    let bytes = 0;
    for (const record of this.#latest.values()) bytes += record.bytes;
    return { records: this.#latest.size, bytes };
  }
}

interface Task {
  graph: TaskGraph;
  stores: Map<string, TaskStore<unknown>>;
  accounts: string[];
  offset: bigint;
  changelogOffsets: Map<string, bigint>;
}

const dir = await mkdtemp(join(tmpdir(), 'bankstream-dedup-bench-'));
const changelog = new ChangelogModel();
const tasks: Task[] = [];
for (let partition = 0; partition < PARTITIONS; partition++) {
  const stores = new Map<string, TaskStore<unknown>>();
  for (const spec of topology.stores())
    stores.set(spec.name, await LevelTaskStore.open(join(dir, String(partition), spec.name), { ...spec }));
  const graph = new TaskGraph({
    topology,
    applicationId: 'bench',
    partition,
    partitions: PARTITIONS,
    stores,
    partitionsOf: () => PARTITIONS,
    partitionForKey,
    emit: (_output: OutputRecord) => undefined,
    nowMs: () => nowMs,
  });
  graph.init();
  tasks.push({ graph, stores, accounts: [], offset: 0n, changelogOffsets: new Map() });
}
for (let i = 0; tasks.some((t) => t.accounts.length < ACCOUNTS_PER_TASK); i++) {
  const id = `acc-${i}`;
  const task = tasks[partitionForKey(Buffer.from(id), PARTITIONS)]!;
  if (task.accounts.length < ACCOUNTS_PER_TASK) task.accounts.push(id);
}

function command(task: Task, value: Record<string, unknown>, key: string): InputRecord {
  task.offset++;
  return {
    topic: TOPICS.input,
    partition: task.graph.partition,
    offset: task.offset,
    key: Buffer.from(key),
    value: Buffer.from(JSON.stringify(value)),
    timestamp: nowMs,
    headers: {},
  };
}

/** One transaction of a task: prefetch, process, punctuate (expiry), commit; returns the punctuate time in ms. */
async function runBatch(task: Task, records: InputRecord[]): Promise<number> {
  const keys = new Map<string, Set<string>>();
  for (const record of records) task.graph.collectPrefetch(record, keys);
  for (const [name, set] of keys) await task.stores.get(name)!.prefetch(set);
  for (const record of records) task.graph.process(record);
  const timerSet = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 1));
  timerLatenessMs.push(performance.now() - timerSet - 1);
  const started = performance.now();
  await task.graph.punctuate(nowMs);
  const punctuateMs = performance.now() - started;
  punctuations.push({ startMs: started, durationMs: punctuateMs });
  for (const [name, store] of task.stores) {
    const entries = store.prepareCommit();
    let offset = task.changelogOffsets.get(name) ?? 0n;
    for (const entry of entries) {
      if (name === 'transfers') changelog.append(entry.key, entry.value, nowMs);
      offset++;
    }
    task.changelogOffsets.set(name, offset);
    await store.flush(entries.length > 0 ? offset : null);
  }
  return punctuateMs;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! * 1000) / 1000;
}

async function dirBytes(path: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(path, { withFileTypes: true })) {
    const full = join(path, entry.name);
    total += entry.isDirectory() ? await dirBytes(full) : (await stat(full)).size;
  }
  return total;
}

const samples: Record<string, number>[] = [];
let idsTotal = 0;
let punctuateMaxMs = 0;
const startedReal = performance.now();
try {
  for (const task of tasks)
    await runBatch(
      task,
      task.accounts.map((accountId) =>
        command(task, { type: 'open_account', accountId, ownerId: `o-${accountId}`, currency: 'EUR' }, accountId),
      ),
    );
  const endMs = START_MS + PERIODS * RETENTION_MS;
  const perTaskBatchMs = (BATCH_RECORDS * 1000) / RATE_PER_S;
  let nextSampleMs = START_MS;
  while (nowMs < endMs) {
    for (const task of tasks) {
      const records: InputRecord[] = [];
      for (let i = 0; i < BATCH_RECORDS; i++) {
        const accountId = task.accounts[i % task.accounts.length]!;
        records.push(
          command(
            task,
            { type: 'deposit', transferId: `t-${idsTotal++}`, accountId, amount: '1', currency: 'EUR' },
            accountId,
          ),
        );
      }
      punctuateMaxMs = Math.max(punctuateMaxMs, await runBatch(task, records));
      // The rate is over all tasks: each task batch is BATCH_RECORDS of the instance's stream.
      nowMs += perTaskBatchMs;
    }
    if (nowMs >= nextSampleMs) {
      nextSampleMs += SAMPLE_EVERY_MS;
      let bytes = 0;
      for (const task of tasks) bytes += await task.stores.get('transfers')!.approximateBytes();
      const kept = changelog.retain(nowMs);
      const sample = {
        simulatedS: Math.round((nowMs - START_MS) / 1000),
        realS: Math.round((performance.now() - startedReal) / 100) / 10,
        idsTotal,
        storeEntries: idsTotal + 0 - purgedTotal,
        storeEntriesCountedByView: [...viewEntries.values()].reduce((a, b) => a + b, 0),
        loadAverage1m: Math.round(loadavg()[0]! * 100) / 100,
        storeApproximateBytes: bytes,
        storeDiskBytes: await dirBytes(dir),
        changelogRecordsKept: kept.records,
        changelogBytesKept: kept.bytes,
        changelogRecordsAppended: changelog.appended,
      };
      samples.push(sample);
      console.log(JSON.stringify(sample));
    }
  }
  // Check the entry count against the store itself: entries left = ids of the live segments.
  let counted = 0;
  for (const task of tasks) for await (const _ of task.stores.get('transfers')!.range()) counted++;
  const realS = (performance.now() - startedReal) / 1000;
  const result = {
    bench: 'dedup-retention',
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model ?? 'unknown',
      loadAverage1mAtEnd: loadavg()[0],
      loadAverage1mMax: Math.max(...samples.map((sample) => sample.loadAverage1m ?? 0)),
      note: args.note,
    },
    settings: {
      ratePerSimulatedS: RATE_PER_S,
      retentionMs: RETENTION_MS,
      segmentIntervalMs: SEGMENT_MS,
      changelogRetentionMs: CHANGELOG_RETENTION_MS,
      periods: PERIODS,
      partitions: PARTITIONS,
      batchRecords: BATCH_RECORDS,
    },
    idsTotal,
    realSeconds: Math.round(realS * 10) / 10,
    realIdsPerS: Math.round(idsTotal / realS),
    storeEntriesCountedAtEnd: counted,
    expiryStepMs: {
      count: expirySteps.length,
      p50: percentile(expirySteps, 50),
      p99: percentile(expirySteps, 99),
      max: Math.round(expiryStepMaxMs * 1000) / 1000,
      budgetMs: DEFAULT_EXPIRY_BOUNDS.budgetMs,
      overBudget: expirySteps.filter((ms) => ms > DEFAULT_EXPIRY_BOUNDS.budgetMs).length,
      stepsLeavingCallInFlight,
    },
    punctuateMaxMs: Math.round(punctuateMaxMs * 1000) / 1000,
    controls: {
      note: 'what any await in this process met meanwhile: a 1 ms timer awaited before each step, and GC pauses',
      timerLatenessMs: {
        p50: percentile(timerLatenessMs, 50),
        p99: percentile(timerLatenessMs, 99),
        max: percentile(timerLatenessMs, 100),
      },
      gcPauseMs: {
        count: gcPauses.length,
        p99: percentile(
          gcPauses.map((gc) => gc.durationMs),
          99,
        ),
        max: percentile(
          gcPauses.map((gc) => gc.durationMs),
          100,
        ),
      },
    },
    punctuateWithoutGcMs: (() => {
      const times = punctuationsWithoutGcMs();
      return { p50: percentile(times, 50), p99: percentile(times, 99), max: percentile(times, 100) };
    })(),
    purgedTotal,
    samples,
  };
  console.log(JSON.stringify({ ...result, samples: undefined }, null, 2));
  const out = args.out ?? join(import.meta.dirname, 'results', `dedup-retention-${result.date.slice(0, 10)}.json`);
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${out}`);
} finally {
  for (const task of tasks) for (const store of task.stores.values()) await store.close();
  await rm(dir, { recursive: true, force: true });
}
