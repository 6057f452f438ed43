// Dedup retention under a simulated clock: `node bench/dedup-retention.bench.ts [--quick] [--rate N]
// [--retention-s N] [--periods N] [--write-buffer-mb N]` (bench/README.md "Dedup retention").
// Drives the bank processor (its real topology, TaskGraph and LevelDB task stores, as one instance's
// tasks run it, without Kafka) through more than one dedup retention period at >= 20,000 new
// transferIds/s of simulated time, and reports over time: the transfers store's entries and bytes, the
// size its changelog keeps (compact,delete with the planned retention.ms, modelled) and entries expired
// per second; and, apart: the loop's pause for each expiry step (loopPauseMs), the wall time of the
// LevelDB calls expiry runs in the background (backgroundMs), the hold expiry step (holdExpiryStepMs:
// holds are --hold-share of the commands, half posted, half left to expire, so holds expire and resolved
// ones are forgotten during the run; their legs go back into the tasks as the credits topic would), the
// whole punctuation (both steps), and the commit's own LevelDB writes (commitWriteMs: LevelDB write
// stalls, seen with expiry off too). Writes bench/results/dedup-retention-<date>.json.
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { partitionForKey } from '../src/kafka/partitioner.ts';
import { DEFAULT_EXPIRY_BOUNDS } from '../src/bank/expiry.ts';
import type { ExpiryStepResult } from '../src/stores/segmented-store.ts';
import { buildBankTopology } from '../src/bank/topology.ts';
import { LevelTaskStore, type LevelTuning } from '../src/stores/level-store.ts';
import type { TaskStore } from '../src/stores/types.ts';
import { SegmentedKeyValueStore } from '../src/stores/segmented-store.ts';
import { type InputRecord, type OutputRecord, TaskGraph } from '../src/topology/task-graph.ts';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rate: { type: 'string', default: '20000' },
    'retention-s': { type: 'string' },
    periods: { type: 'string' },
    partitions: { type: 'string', default: '4' },
    'batch-records': { type: 'string', default: '2000' },
    /** Share of the commands that are holds (each half posted before its deadline, half left to expire). */
    'hold-share': { type: 'string', default: '0.02' },
    /** LevelDB's write buffer per database in MiB (the product's default: 4). */
    'write-buffer-mb': { type: 'string' },
    out: { type: 'string' },
    note: {
      type: 'string',
      default: 'shared 2-core machine; other sessions may run tests at the same time (see the load averages)',
    },
  },
});
const RATE_PER_S = Number(args.rate);
/** --quick: 2 s retention over 2.5 periods (100,000 ids); the full run: 6 s over 3 periods (360,000 ids). */
const RETENTION_MS = Number(args['retention-s'] ?? (args.quick ? 2 : 6)) * 1000;
const SEGMENT_MS = RETENTION_MS / 2;
const PERIODS = Number(args.periods ?? (args.quick ? 2.5 : 3));
const PARTITIONS = Number(args.partitions);
const BATCH_RECORDS = Number(args['batch-records']);
const HOLD_SHARE = Number(args['hold-share']);
/** A hold's timeout in simulated ms: 500-2,000 (it expires inside the run); a posted one is posted after 200. */
const HOLD_TIMEOUT_MIN_MS = 500;
const HOLD_TIMEOUT_SPAN_MS = 1_500;
const HOLD_POST_AFTER_MS = 200;
const TUNING: LevelTuning =
  args['write-buffer-mb'] === undefined ? {} : { writeBufferSize: Number(args['write-buffer-mb']) * 1024 * 1024 };
for (const [name, value] of Object.entries({ RATE_PER_S, RETENTION_MS, PERIODS, PARTITIONS, BATCH_RECORDS }))
  if (!(value > 0)) throw new Error(`dedup-retention bench: ${name} must be positive, got ${value}`);
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
/** Each hold expiry step (hold-expiry.ts) apart: its pause, and what it did. */
const holdPauses: number[] = [];
const holdFirstSteps: number[] = [];
const holdSteps: { startMs: number; durationMs: number }[] = [];
const holdTotals = { expiriesRequested: 0, forgotten: 0, scans: 0, scanBackgroundMs: 0, overBudget: 0 };
/** Hold outcomes seen on the completed topic. */
const holdOutcomes = { placed: 0, posted: 0, expired: 0 };
let holdsSent = 0;
/** Whether the punctuation running now holds a task's first hold step (which waits for its first scan). */
let firstHoldStepNow = false;
/** The punctuations without a first hold step. */
const laterPunctuations: { startMs: number; durationMs: number }[] = [];
/** Each expiry step's hold of the loop (it is synchronous: the loop resumes when it returns). */
const loopPauses: number[] = [];
/** The CPU time the step's thread used in each (the rest of a pause is the OS not running the process, or GC). */
const loopPauseCpu: number[] = [];
let purgedTotal = 0;
let stepsLeavingCallInFlight = 0;
/** Each step as an interval of performance.now() (to subtract GC pauses from), and the longest step's result. */
const stepIntervals: { startMs: number; durationMs: number }[] = [];
let longestStep: (ExpiryStepResult & { partition: number }) | undefined;
/** The LevelDB calls expiry ran in the background (purges, scans), as the steps reported them. */
const background = { calls: 0, ms: 0, callMaxMs: 0 };
/** Each commit's LevelDB write batch (CachedTaskStore.flush) of the transfers store and of the others. */
const commitWrites = { transfers: [] as number[], others: [] as number[] };
/** Controls for what the machine does to any await: GC pauses, and a 1 ms timer awaited before each batch's step. */
const gcPauses: { startMs: number; durationMs: number }[] = [];
const timerLatenessMs: number[] = [];
/** Every punctuation (the expiry step and its callback) as an interval of performance.now(), to subtract GC pauses from. */
const punctuations: { startMs: number; durationMs: number }[] = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcPauses.push({ startMs: entry.startTime, durationMs: entry.duration });
}).observe({ entryTypes: ['gc'] });

/** Each interval's time minus the GC pauses that overlapped it. */
function withoutGcMs(intervals: { startMs: number; durationMs: number }[]): number[] {
  return intervals.map(({ startMs, durationMs }) => {
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
    loopPauses.push(result.durationMs);
    loopPauseCpu.push(result.cpuMs);
    stepIntervals.push({ startMs: performance.now() - result.durationMs, durationMs: result.durationMs });
    if (result.durationMs > (longestStep?.durationMs ?? -1)) longestStep = { ...result, partition };
    purgedTotal += result.purged;
    background.calls += result.backgroundCalls;
    background.ms += result.backgroundMs;
    background.callMaxMs = Math.max(background.callMaxMs, result.backgroundCallMaxMs);
    if (result.inFlight) stepsLeavingCallInFlight++;
    if (result.storeEntries !== undefined) viewEntries.set(partition, result.storeEntries);
  },
  onHoldExpiryStep: (result) => {
    if (result.waitedForFirstScan) {
      holdFirstSteps.push(result.durationMs);
      firstHoldStepNow = true;
    } else {
      holdPauses.push(result.durationMs);
      holdSteps.push({ startMs: performance.now() - result.durationMs, durationMs: result.durationMs });
    }
    holdTotals.expiriesRequested += result.expiriesRequested;
    holdTotals.forgotten += result.forgotten;
    if (result.scannedEntries > 0 || result.backgroundMs > 0) holdTotals.scans++;
    holdTotals.scanBackgroundMs += result.backgroundMs;
    if (result.overBudget) holdTotals.overBudget++;
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
  /** Legs the task's credits sink wrote to this task's partition: its next batch reads them first. */
  legs: InputRecord[];
  legOffset: bigint;
  /** Holds placed and to be posted at a simulated time. */
  posts: { holdId: string; from: string; atMs: number }[];
}

const dir = await mkdtemp(join(tmpdir(), 'bankstream-dedup-bench-'));
const changelog = new ChangelogModel();
const tasks: Task[] = [];
for (let partition = 0; partition < PARTITIONS; partition++) {
  const stores = new Map<string, TaskStore<unknown>>();
  for (const spec of topology.stores())
    stores.set(spec.name, await LevelTaskStore.open(join(dir, String(partition), spec.name), { ...spec }, TUNING));
  const graph = new TaskGraph({
    topology,
    applicationId: 'bench',
    partition,
    partitions: PARTITIONS,
    stores,
    partitionsOf: () => PARTITIONS,
    partitionForKey,
    emit: (output: OutputRecord) => route(output),
    nowMs: () => nowMs,
  });
  graph.init();
  tasks.push({
    graph,
    stores,
    accounts: [],
    offset: 0n,
    changelogOffsets: new Map(),
    legs: [],
    legOffset: 0n,
    posts: [],
  });
}

/** The credits topic as Kafka would carry it (legs into their partition's task); hold outcomes counted. */
function route(output: OutputRecord): void {
  if (output.topic === TOPICS.credits) {
    const task = tasks[output.partition]!;
    task.legOffset++;
    task.legs.push({ ...output, offset: task.legOffset });
  } else if (output.topic === TOPICS.completed && output.value !== null) {
    const text = output.value.toString('utf8');
    if (text.includes('"type":"hold_expiry"')) holdOutcomes.expired++;
    else if (text.includes('"type":"post_hold"')) holdOutcomes.posted++;
    else if (text.includes('"type":"hold"')) holdOutcomes.placed++;
  }
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

/** One transaction of a task: prefetch, process, punctuate (expiry), commit, as the engine's loop does them. */
async function runBatch(task: Task, commands: InputRecord[]): Promise<void> {
  const records = task.legs.length === 0 ? commands : [...task.legs.splice(0), ...commands];
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
  if (!firstHoldStepNow) laterPunctuations.push({ startMs: started, durationMs: punctuateMs });
  firstHoldStepNow = false;
  for (const [name, store] of task.stores) {
    const entries = store.prepareCommit();
    let offset = task.changelogOffsets.get(name) ?? 0n;
    for (const entry of entries) {
      if (name === 'transfers') changelog.append(entry.key, entry.value, nowMs);
      offset++;
    }
    task.changelogOffsets.set(name, offset);
    const flushStarted = performance.now();
    await store.flush(entries.length > 0 ? offset : null);
    (name === 'transfers' ? commitWrites.transfers : commitWrites.others).push(performance.now() - flushStarted);
  }
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

function stats(values: number[]): { count: number; p50: number; p99: number; max: number } {
  return {
    count: values.length,
    p50: percentile(values, 50),
    p99: percentile(values, 99),
    max: percentile(values, 100),
  };
}

const samples: Record<string, number>[] = [];
let purgedAtLastSample = 0;
let realMsAtLastSample = 0;
let idsTotal = 0;
const startedReal = performance.now();
try {
  for (const task of tasks)
    await runBatch(
      task,
      task.accounts.map((accountId) =>
        command(task, { type: 'open_account', accountId, ownerId: `o-${accountId}`, currency: 'EUR' }, accountId),
      ),
    );
  // Funds for the holds (the deposits of the run go to every account, but not before the first holds).
  for (const task of tasks)
    await runBatch(
      task,
      task.accounts.map((accountId) =>
        command(
          task,
          { type: 'deposit', transferId: `fund-${idsTotal++}`, accountId, amount: '1000', currency: 'EUR' },
          accountId,
        ),
      ),
    );
  const endMs = START_MS + PERIODS * RETENTION_MS;
  const perTaskBatchMs = (BATCH_RECORDS * 1000) / RATE_PER_S;
  let nextSampleMs = START_MS;
  while (nowMs < endMs) {
    for (const task of tasks) {
      const records: InputRecord[] = [];
      while (task.posts.length > 0 && task.posts[0]!.atMs <= nowMs) {
        const { holdId, from } = task.posts.shift()!;
        idsTotal++;
        records.push(command(task, { type: 'post_hold', transferId: `p-${holdId}`, holdId, from }, from));
      }
      for (let i = records.length; i < BATCH_RECORDS; i++) {
        const accountId = task.accounts[i % task.accounts.length]!;
        if (HOLD_SHARE > 0 && idsTotal % Math.round(1 / HOLD_SHARE) === 0) {
          // A hold to the next account of the same task (its legs stay in the task), then posted or left to expire.
          const holdId = `h-${idsTotal++}`;
          const to = task.accounts[(i + 1) % task.accounts.length]!;
          const timeoutMs = HOLD_TIMEOUT_MIN_MS + (holdsSent % HOLD_TIMEOUT_SPAN_MS);
          records.push(
            command(
              task,
              { type: 'hold', transferId: holdId, from: accountId, to, amount: '0.01', currency: 'EUR', timeoutMs },
              accountId,
            ),
          );
          if (holdsSent++ % 2 === 0) task.posts.push({ holdId, from: accountId, atMs: nowMs + HOLD_POST_AFTER_MS });
          continue;
        }
        records.push(
          command(
            task,
            { type: 'deposit', transferId: `t-${idsTotal++}`, accountId, amount: '1', currency: 'EUR' },
            accountId,
          ),
        );
      }
      await runBatch(task, records);
      // The rate is over all tasks: each task batch is BATCH_RECORDS of the instance's stream.
      nowMs += perTaskBatchMs;
    }
    if (nowMs >= nextSampleMs) {
      nextSampleMs += SAMPLE_EVERY_MS;
      let bytes = 0;
      for (const task of tasks) bytes += await task.stores.get('transfers')!.approximateBytes();
      const kept = changelog.retain(nowMs);
      const realMs = performance.now() - startedReal;
      const sample = {
        simulatedS: Math.round((nowMs - START_MS) / 1000),
        realS: Math.round(realMs / 100) / 10,
        expiredPerSimulatedS: Math.round(((purgedTotal - purgedAtLastSample) * 1000) / SAMPLE_EVERY_MS),
        expiredPerRealS: Math.round(
          ((purgedTotal - purgedAtLastSample) * 1000) / Math.max(1, realMs - realMsAtLastSample),
        ),
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
      purgedAtLastSample = purgedTotal;
      realMsAtLastSample = realMs;
      samples.push(sample);
      console.log(JSON.stringify(sample));
    }
  }
  const realS = (performance.now() - startedReal) / 1000;
  // The loop never waits for expiry's background calls; the count below does (one last step takes their results).
  for (const task of tasks) await task.graph.idle();
  for (const task of tasks) await task.graph.punctuate(nowMs + 1_000);
  // Check the entry count against the store itself: entries left = ids of the live segments.
  let counted = 0;
  for (const task of tasks) for await (const _ of task.stores.get('transfers')!.range()) counted++;
  const boundEntries = Math.round(RATE_PER_S * ((RETENTION_MS + SEGMENT_MS) / 1000));
  const afterFirstPeriod = samples.filter((sample) => sample.simulatedS! * 1000 > RETENTION_MS + SEGMENT_MS);
  /** The largest value of a sampled field after the first retention + segment; null when the run is shorter. */
  const maxAfterFirstPeriod = (field: string): number | null =>
    afterFirstPeriod.length === 0 ? null : Math.max(...afterFirstPeriod.map((sample) => sample[field]!));
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
      quick: args.quick,
      ratePerSimulatedS: RATE_PER_S,
      retentionMs: RETENTION_MS,
      segmentIntervalMs: SEGMENT_MS,
      changelogRetentionMs: CHANGELOG_RETENTION_MS,
      periods: PERIODS,
      partitions: PARTITIONS,
      batchRecords: BATCH_RECORDS,
      expiry: DEFAULT_EXPIRY_BOUNDS,
      levelDbWriteBufferBytes: TUNING.writeBufferSize ?? 'default (4 MiB)',
    },
    idsTotal,
    realSeconds: Math.round(realS * 10) / 10,
    realIdsPerS: Math.round(idsTotal / realS),
    storeEntriesCountedAtEnd: counted,
    bounded: {
      note: 'after the first retention + segment: what the store and the changelog held at most, against rate x (retention + segment)',
      storeEntriesBound: boundEntries,
      storeEntriesMax: maxAfterFirstPeriod('storeEntries'),
      storeApproximateBytesMax: maxAfterFirstPeriod('storeApproximateBytes'),
      storeDiskBytesMax: maxAfterFirstPeriod('storeDiskBytes'),
      changelogRecordsKeptMax: maxAfterFirstPeriod('changelogRecordsKept'),
      changelogBytesKeptMax: maxAfterFirstPeriod('changelogBytesKept'),
    },
    loopPauseMs: {
      note: 'each dedup expiry step, as the processing loop waits for it: the step is synchronous (no LevelDB wait), so this is its own CPU work',
      ...stats(loopPauses),
      budgetMs: DEFAULT_EXPIRY_BOUNDS.budgetMs,
      overBudget: loopPauses.filter((ms) => ms > DEFAULT_EXPIRY_BOUNDS.budgetMs).length,
      stepsLeavingCallInFlight,
      withoutGc: stats(withoutGcMs(stepIntervals)),
      cpuMs: stats(loopPauseCpu),
      longestStep,
    },
    backgroundMs: {
      note: 'wall time of the LevelDB calls expiry ran in the background (purges, scans), start to settle: nobody waits for them',
      total: Math.round(background.ms),
      calls: background.calls,
      meanPerCall: Math.round((background.ms / Math.max(1, background.calls)) * 1000) / 1000,
      callMax: Math.round(background.callMaxMs * 1000) / 1000,
    },
    holdExpiryStepMs: {
      note: 'each hold expiry step (src/bank/hold-expiry.ts) as the loop waits for it: synchronous, it applies the background scan of the holds index and sends hold_expire legs; the first step of each task, which waits for its first scan, is apart (firstStepMs)',
      ...stats(holdPauses),
      budgetMs: DEFAULT_EXPIRY_BOUNDS.budgetMs,
      overBudget: holdPauses.filter((ms) => ms > DEFAULT_EXPIRY_BOUNDS.budgetMs).length,
      stepsStoppedAtBudget: holdTotals.overBudget,
      withoutGc: stats(withoutGcMs(holdSteps)),
      firstStepMs: holdFirstSteps.map((ms) => Math.round(ms * 1000) / 1000),
      expiriesRequested: holdTotals.expiriesRequested,
      forgotten: holdTotals.forgotten,
      scansApplied: holdTotals.scans,
      scanBackgroundMsMean: Math.round((holdTotals.scanBackgroundMs / Math.max(1, holdTotals.scans)) * 1000) / 1000,
    },
    holds: {
      note: 'holds are hold-share of the commands, to an account of the same task; every other one is posted 200 ms (simulated) after it is placed, the rest expire 0.5-2 s after',
      holdShare: HOLD_SHARE,
      sent: holdsSent,
      ...holdOutcomes,
    },
    punctuateMs: {
      note: 'the whole punctuation of a task: the dedup expiry step and the hold expiry step (neither waits for LevelDB but for the first hold step of each task)',
      ...stats(punctuations.map((p) => p.durationMs)),
      withoutGc: stats(withoutGcMs(punctuations)),
      withoutFirstHoldSteps: stats(laterPunctuations.map((p) => p.durationMs)),
      overBudgetWithoutFirstHoldSteps: laterPunctuations.filter((p) => p.durationMs > DEFAULT_EXPIRY_BOUNDS.budgetMs)
        .length,
    },
    commitWriteMs: {
      note: 'the commit flush: each store s LevelDB write batch, awaited by this bench (the engine awaits it in the background of the next batch); its stalls are LevelDB write stalls (compaction behind on a loaded machine), seen with expiry off too',
      transfers: stats(commitWrites.transfers),
      otherStores: stats(commitWrites.others),
    },
    controls: {
      note: 'what any await in this process met meanwhile: a 1 ms timer awaited before each step, and GC pauses',
      timerLatenessMs: stats(timerLatenessMs),
      gcPauseMs: stats(gcPauses.map((gc) => gc.durationMs)),
    },
    purgedTotal,
    samples,
  };
  console.log(JSON.stringify({ ...result, samples: undefined }, null, 2));
  const out =
    args.out ??
    join(
      import.meta.dirname,
      'results',
      `dedup-retention-${result.date.slice(0, 10)}${args.quick ? '-quick' : ''}.json`,
    );
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${out}`);
} finally {
  for (const task of tasks) for (const store of task.stores.values()) await store.close();
  await rm(dir, { recursive: true, force: true });
}
