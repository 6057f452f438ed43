// The results of one bench run: a JSON file (machine, versions, settings, every measure) and a
// markdown table of the headline numbers, ratios measured side by side in the same run.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type MachineInfo, machineSlug } from './environment.ts';
import type { ApiResult } from './phases/api.ts';
import type { BaselineThroughput } from './phases/baseline.ts';
import type { EngineThroughput } from './phases/engine.ts';
import type { LatencyResult } from './phases/latency.ts';
import type { RestoreResult } from './phases/restore.ts';
import type { SinkThroughput } from './phases/sink.ts';
import type { ProfileSummary } from './profile.ts';

export interface BenchResults {
  schema: 'bankstream-bench/1';
  startedAt: string;
  finishedAt: string;
  durationS: number;
  machine: MachineInfo;
  settings: Record<string, unknown>;
  load: { setupS?: number; backlogTransfers?: number; backlogPerSecond?: number };
  engine?: EngineThroughput;
  baseline?: BaselineThroughput;
  /** Engine sustained transfers/s ÷ baseline transfers/s, both measured in this run. */
  ratio?: number;
  latency: { full?: LatencyResult; half?: LatencyResult; light?: LatencyResult };
  sink?: SinkThroughput;
  restore?: RestoreResult;
  api?: ApiResult;
  profile?: ProfileSummary;
  /** The machine's 1-minute load average at the end of each phase: other work on the machine skews a run. */
  loadAverage: Record<string, number>;
  /** Phases that failed, with their error; the others still ran. */
  failures: Array<{ phase: string; error: string }>;
  notes: string[];
}

export async function writeResults(resultsDir: string, results: BenchResults): Promise<string> {
  await mkdir(resultsDir, { recursive: true });
  // Date and time (UTC, to the minute): a second run the same day does not overwrite the first.
  const stamp = `${results.startedAt.slice(0, 10)}T${results.startedAt.slice(11, 13)}${results.startedAt.slice(14, 16)}`;
  const file = path.join(resultsDir, `${stamp}-${machineSlug(results.machine)}.json`);
  await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  return file;
}

const n = (value: number | undefined) => (value === undefined ? '–' : value.toLocaleString('en-US'));

function latencyCell(l: LatencyResult | undefined): string {
  if (!l) return '–';
  const v = l.visible;
  return `${n(v.p50Ms)} / ${n(v.p99Ms)} / ${n(v.p999Ms)} ms at ${n(l.answeredPerSecond)}/s${l.missing > 0 ? ` (${n(l.missing)} missing)` : ''}`;
}

export function markdownTable(r: BenchResults): string {
  const e = r.engine;
  const b = r.baseline;
  const rows: string[][] = [
    [
      'Completed transfers/s, sustained (exactly-once, 1 instance)',
      e
        ? `${n(e.sustainedPerSecond)} (whole backlog: ${n(e.overallPerSecond)})${e.timedOut ? ' (timed out)' : ''}`
        : '–',
      n(b?.perSecond),
      r.ratio === undefined ? '–' : `**${r.ratio}×**`,
      '≥ 50,000; ≥ 20× baseline',
    ],
    [
      'CPU of the processor process (cores)',
      e?.cpuCores === undefined ? '–' : String(e.cpuCores),
      b?.cpuCores === undefined ? '–' : String(b.cpuCores),
      '',
      '',
    ],
    [
      'CPU of the broker meanwhile (cores)',
      e?.brokerCpuCores === undefined ? '–' : String(e.brokerCpuCores),
      b?.brokerCpuCores === undefined ? '–' : String(b.brokerCpuCores),
      '',
      '',
    ],
    ['E2E latency p50 / p99 / p99.9, full load', latencyCell(r.latency.full), '', '', ''],
    ['E2E latency p50 / p99 / p99.9, half load', latencyCell(r.latency.half), '', '', 'p99 < 250 ms'],
    ['E2E latency p50 / p99 / p99.9, light load (1,000/s)', latencyCell(r.latency.light), '', '', ''],
    [
      'Decision latency p99 (completedAt − requestedAt), half load',
      r.latency.half ? `${n(r.latency.half.decided.p99Ms)} ms` : '–',
      '',
      '',
      '',
    ],
    [
      'Restore, changelog records/s (state folder deleted)',
      r.restore ? `${n(r.restore.perSecond)} (${n(r.restore.records)} records in ${r.restore.durationS} s)` : '–',
      '',
      '',
      '≥ 200,000',
    ],
    [
      'Sink rows/s (Postgres, catching up alone)',
      r.sink ? `${n(r.sink.rowsPerSecond)} (${n(r.sink.rows)} rows)` : '–',
      '',
      '',
      '',
    ],
    ['GET /v1/accounts/:id req/s, p99', apiCell(r.api), '', '', '≥ 10,000 at p99 < 10 ms'],
  ];
  const lines = [
    '| measure | bankstream | seed baseline | ratio | target |',
    '|---|---:|---:|---:|---|',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ];
  const m = r.machine;
  lines.push(
    '',
    `${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB · Node ${m.node} · Kafka ${m.kafka} · PostgreSQL ${m.postgres} · preset ${String(r.settings['preset'])} · ${r.startedAt}`,
  );
  const busiest = Math.max(0, ...Object.values(r.loadAverage));
  if (busiest > m.cores)
    lines.push(
      `- the machine was busy during the run (1-min load average up to ${busiest} on ${m.cores} cores): other work competed with the bench`,
    );
  for (const f of r.failures) lines.push(`- phase ${f.phase} failed: ${f.error}`);
  for (const note of r.notes) lines.push(`- ${note}`);
  return lines.join('\n');
}

function apiCell(api: ApiResult | undefined): string {
  if (!api) return '–';
  if (api.status === 'pending') return `pending: ${api.reason}`;
  return `${n(api.requestsPerSecond)} req/s, p99 ${api.p99Ms} ms${api.non2xx > 0 ? ` (${n(api.non2xx)} non-2xx)` : ''}`;
}
