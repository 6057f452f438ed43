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
}

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
  >
> = {
  // About two minutes on a 2-core machine.
  quick: {
    accounts: 2000,
    backlogTransfers: 100_000,
    latencyS: 12,
    baselineS: 12,
    apiS: 8,
    engineTimeoutS: 90,
    sinkTimeoutS: 90,
    restoreTimeoutS: 60,
  },
  // About seven minutes, at most about ten (each open-ended phase is bounded by its timeout).
  full: {
    accounts: 5000,
    backlogTransfers: 400_000,
    latencyS: 30,
    baselineS: 45,
    apiS: 20,
    engineTimeoutS: 150,
    sinkTimeoutS: 150,
    restoreTimeoutS: 90,
  },
};

export const RESULTS_DIR = path.join(REPO_ROOT, 'bench', 'results');
