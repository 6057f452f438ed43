// What a bench run does and how long each phase may take: two presets and the flags that override them.
import path from 'node:path';
import type { Skew } from '../src/load/random.ts';
import { REPO_ROOT } from './environment.ts';

export interface BenchSettings {
  preset: 'quick' | 'full';
  brokers: string[];
  /** Any database URL of the PostgreSQL server; the bench creates its own database next to it. */
  postgresUrl: string;
  partitions: number;
  commitIntervalMs: number;
  batchRecordsMax: number;
  /** The engine's COMMIT_WHEN_CAUGHT_UP (from the bench's own environment, as COMMIT_INTERVAL_MS). */
  commitWhenCaughtUp: boolean;
  /** The engine's FETCH_MAX_WAIT_MS and FETCH_MIN_BYTES (from the bench's environment, likewise). */
  fetchMaxWaitMs: number;
  fetchMinBytes: number;
  accounts: number;
  /** Transfers produced before the engine starts; the engine's throughput is measured on them. */
  backlogTransfers: number;
  /** Each latency phase (full load, then half load). */
  latencyS: number;
  /** Outcomes requested in the first seconds of a latency phase are not recorded (warm-up). */
  latencyWarmupS: number;
  baselineS: number;
  apiS: number;
  apiConnections: number;
  skew: Skew;
  invalidRatio: number;
  seed: number;
  /** Upper bounds of the open-ended phases: the run always ends. */
  engineTimeoutS: number;
  sinkTimeoutS: number;
  restoreTimeoutS: number;
  cpuProfile: boolean;
  profileDir: string;
  resultsDir: string;
  workDir: string;
  keep: boolean;
  /** Wait up to this long for the machine's load average to fall below half its cores before starting. */
  quietWaitS: number;
  /** Start the local broker with scripts/kafka.sh when none answers. */
  startKafka: boolean;
  /** Records ProducerPerformance writes for the broker's own limit (0 skips it). */
  rawRecords: number;
  rawRecordSize: number;
  /** The latency curve's fixed rates, as shares of the sustained backlog rate. */
  latencyFractions: number[];
  /** Instances of the scale-out phase, compared with the one-instance rate (0 skips it). */
  scaleInstances: number;
  /** Rewrite the latest-run section of bench/README.md (full runs into bench/results only). */
  readme: boolean;
}

/** Issue 21's yardsticks: 200-byte raw records, the curve at 10/25/50/75 % of sustained, two instances. */
const ISSUE_21 = { rawRecordSize: 200, latencyFractions: [0.1, 0.25, 0.5, 0.75], scaleInstances: 2 };

export const PRESETS: Record<
  BenchSettings['preset'],
  Pick<
    BenchSettings,
    | 'accounts'
    | 'backlogTransfers'
    | 'latencyS'
    | 'baselineS'
    | 'apiS'
    | 'engineTimeoutS'
    | 'sinkTimeoutS'
    | 'restoreTimeoutS'
    | 'rawRecords'
    | 'rawRecordSize'
    | 'latencyFractions'
    | 'scaleInstances'
    | 'readme'
  >
> = {
  // A smoke run: about three minutes on a 2-core machine.
  quick: {
    accounts: 2000,
    backlogTransfers: 60_000,
    latencyS: 8,
    baselineS: 12,
    apiS: 5,
    engineTimeoutS: 90,
    sinkTimeoutS: 90,
    restoreTimeoutS: 60,
    rawRecords: 300_000,
    ...ISSUE_21,
    readme: false,
  },
  // About seven minutes, at most about ten (each open-ended phase is bounded by its timeout).
  full: {
    accounts: 10_000,
    backlogTransfers: 320_000,
    latencyS: 20,
    baselineS: 30,
    apiS: 10,
    engineTimeoutS: 150,
    sinkTimeoutS: 120,
    restoreTimeoutS: 90,
    rawRecords: 2_000_000,
    ...ISSUE_21,
    readme: true,
  },
};

export const RESULTS_DIR = path.join(REPO_ROOT, 'bench', 'results');
