// The results of one bench run: a JSON file (machine, versions, settings, every measure), the latency
// curve as an SVG beside it, and markdown tables of the headline numbers, ratios measured in the same run.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type MachineInfo, machineSlug } from './environment.ts';
import type { ApiResult } from './phases/api.ts';
import type { BaselineThroughput } from './phases/baseline.ts';
import type { EngineThroughput } from './phases/engine.ts';
import type { LatencyResult } from './phases/latency.ts';
import type { RestoreResult } from './phases/restore.ts';
import type { ScaleThroughput } from './phases/scale.ts';
import type { SinkThroughput } from './phases/sink.ts';
import type { WritesResult } from './phases/writes.ts';
import { type ProducerPerformanceResult, rawNormalized } from './producer-perf.ts';
import type { ProfileSummary } from './profile.ts';
import { round } from './series.ts';
import { latencyChartSvg } from './svg-chart.ts';

export interface BenchResults {
  schema: 'bankstream-bench/2';
  startedAt: string;
  finishedAt: string;
  durationS: number;
  machine: MachineInfo;
  settings: Record<string, unknown>;
  load: { setupS?: number; backlogTransfers?: number; backlogPerSecond?: number };
  /** The broker alone: Kafka's ProducerPerformance (acks=all, the engine's partition count). */
  raw?: ProducerPerformanceResult & { partitions: number; recordSize: number; brokerCpuCores?: number };
  /** raw.recordsPerSecond, repeated at the top level as issue 21 names it. */
  rawRecordsPerSecond?: number;
  engine?: EngineThroughput;
  /** Engine CPU (user + system, all threads) per input command over the sustained window, µs. */
  engineCpuMicrosPerCommand?: number;
  /** Engine sustained commands/s ÷ rawRecordsPerSecond, both measured in this run. */
  rawNormalized?: number;
  /** Records, markers and bytes written per input command, by topic, over the backlog. */
  writes?: WritesResult;
  /** The same backlog with more instances (a second application id). */
  scale?: ScaleThroughput;
  /** scale.sustainedPerSecond ÷ engine.sustainedPerSecond. */
  scaleRatio?: number;
  baseline?: BaselineThroughput;
  /** Engine sustained transfers/s ÷ baseline transfers/s, both measured in this run. */
  ratio?: number;
  /** Fixed rates (shares of the engine's sustained rate), lowest first. */
  latencyCurve: LatencyResult[];
  /** The SVG of the curve, beside the results file. */
  latencyPlot?: string;
  sink?: SinkThroughput;
  restore?: RestoreResult;
  api: { idle?: ApiResult; halfLoad?: ApiResult };
  profile?: ProfileSummary;
  /** The machine's 1-minute load average at the end of each phase: other work on the machine skews a run. */
  loadAverage: Record<string, number>;
  /** Phases that failed, with their error; the others still ran. */
  failures: Array<{ phase: string; error: string }>;
  notes: string[];
}

export function resultsStem(results: Pick<BenchResults, 'startedAt' | 'machine'>): string {
  // Date and time (UTC, to the minute): a second run the same day does not overwrite the first.
  const at = results.startedAt;
  return `${at.slice(0, 10)}T${at.slice(11, 13)}${at.slice(14, 16)}-${machineSlug(results.machine)}`;
}

/** Writes <stem>.json and, when there is a curve, <stem>-latency.svg; returns the JSON's path. */
export async function writeResults(resultsDir: string, results: BenchResults): Promise<string> {
  await mkdir(resultsDir, { recursive: true });
  const stem = resultsStem(results);
  if (results.latencyCurve.length > 0) {
    results.latencyPlot = `${stem}-latency.svg`;
    await writeFile(path.join(resultsDir, results.latencyPlot), curveSvg(results));
  }
  const file = path.join(resultsDir, `${stem}.json`);
  await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  return file;
}

export function curveSvg(r: BenchResults): string {
  const m = r.machine;
  return latencyChartSvg(
    r.latencyCurve.map((l) => ({
      throughput: l.sentPerSecond,
      p50Ms: l.visible.p50Ms,
      p99Ms: l.visible.p99Ms,
      p999Ms: l.visible.p999Ms,
    })),
    {
      title: `Visible latency vs throughput (sustained ${n(r.engine?.sustainedPerSecond)} commands/s, 1 instance)`,
      subtitle: `${m.cpuModel}, ${m.cores} cores · Node ${m.node} · Kafka ${m.kafka} · ${r.startedAt}`,
      threshold: { ms: 250, label: 'target: p99 ≤ 250 ms at 50 %' },
    },
  );
}

const n = (value: number | undefined) => (value === undefined ? '–' : value.toLocaleString('en-US'));

function apiCell(api: ApiResult | undefined): string {
  if (!api) return '–';
  if (api.status === 'pending') return `pending: ${api.reason}`;
  return `${n(api.requestsPerSecond)} req/s, p99 ${api.p99Ms} ms${api.non2xx > 0 ? ` (${n(api.non2xx)} non-2xx)` : ''}`;
}

function latencyAt(r: BenchResults, fraction: number): LatencyResult | undefined {
  return r.latencyCurve.find((l) => l.fraction === fraction);
}

/** The headline table: measure, value, target (issue 21's "done means"). */
export function markdownTable(r: BenchResults): string {
  const e = r.engine;
  const half = latencyAt(r, 0.5);
  const rows: string[][] = [
    [
      'Broker alone: ProducerPerformance records/s (acks=all, 200 B, 12 partitions)',
      r.raw ? `${n(r.raw.recordsPerSecond)} (${n(r.raw.records)} records, p99 ${r.raw.p99Ms} ms)` : '–',
      '',
    ],
    [
      'Engine: sustained commands/s, 1 instance, backlog (exactly-once)',
      e
        ? `${n(e.sustainedPerSecond)} (whole backlog: ${n(e.overallPerSecond)}; ${n(e.transfers)} commands)${e.timedOut ? ' (timed out)' : ''}`
        : '–',
      '',
    ],
    [
      '**rawNormalized** = engine commands/s ÷ raw records/s',
      r.rawNormalized === undefined ? '–' : `**${r.rawNormalized}**`,
      '≥ 0.08',
    ],
    [
      'Engine CPU per input command',
      r.engineCpuMicrosPerCommand === undefined
        ? '–'
        : `${r.engineCpuMicrosPerCommand} µs (${e?.cpuCores ?? '–'} cores)`,
      '≤ 40 µs',
    ],
    ['Broker CPU meanwhile (cores)', e?.brokerCpuCores === undefined ? '–' : String(e.brokerCpuCores), ''],
    [
      'Written per command (engine topics): records / markers / bytes',
      r.writes
        ? `${r.writes.total.recordsPerCommand} / ${r.writes.total.markersPerCommand} / ${n(Math.round(r.writes.total.bytesPerCommand))} B`
        : '–',
      '',
    ],
    [
      `${r.scale?.instances ?? 2} instances vs 1, sustained commands/s`,
      r.scale
        ? `${n(r.scale.sustainedPerSecond)} vs ${n(e?.sustainedPerSecond)}: **${r.scaleRatio ?? '–'}×**${r.scale.timedOut ? ' (timed out)' : ''}`
        : '–',
      '≥ 1.7×',
    ],
    [
      'Visible latency p99 at 50 % of sustained',
      half ? `${n(half.visible.p99Ms)} ms at ${n(half.sentPerSecond)}/s` : '–',
      '≤ 250 ms',
    ],
    [
      'Restore, changelog records/s (fresh state folder)',
      r.restore ? `${n(r.restore.perSecond)} (${n(r.restore.records)} records in ${r.restore.durationS} s)` : '–',
      '≥ 200,000',
    ],
    ['GET /v1/accounts/:id, engine idle', apiCell(r.api.idle), '≥ 10,000 req/s at p99 ≤ 10 ms'],
    ['GET /v1/accounts/:id, engine at half load', apiCell(r.api.halfLoad), ''],
    [
      'Sink rows/s (Postgres, catching up alone)',
      r.sink ? `${n(r.sink.rowsPerSecond)} (${n(r.sink.rows)} rows)` : '–',
      '',
    ],
    [
      'Seed-style baseline transfers/s (engine ÷ baseline)',
      r.baseline ? `${n(r.baseline.perSecond)} (${r.ratio ?? '–'}×)` : '–',
      '',
    ],
  ];
  return [
    '| measure | this run | target |',
    '| --- | ---: | --- |',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
}

export function curveTable(r: BenchResults): string {
  if (r.latencyCurve.length === 0) return '';
  const lines = [
    '| share of sustained | target/s | sent/s | answered/s | visible p50 / p99 / p99.9 (ms) | decided p99 (ms) | missing |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const l of r.latencyCurve)
    lines.push(
      `| ${l.fraction === undefined ? l.label : `${Math.round(l.fraction * 100)} %`} | ${n(l.targetPerSecond)} | ${n(l.sentPerSecond)} | ${n(l.answeredPerSecond)} | ${n(l.visible.p50Ms)} / ${n(l.visible.p99Ms)} / ${n(l.visible.p999Ms)} | ${n(l.decided.p99Ms)} | ${n(l.missing)} |`,
    );
  return lines.join('\n');
}

export function writesTable(r: BenchResults): string {
  const w = r.writes;
  if (!w) return '';
  const lines = [
    '| topic | role | records / command | markers / command | bytes / command |',
    '| --- | --- | ---: | ---: | ---: |',
  ];
  const row = (name: string, role: string, t: WritesResult['total']) =>
    `| ${name} | ${role} | ${t.recordsPerCommand} | ${t.markersPerCommand} | ${n(Math.round(t.bytesPerCommand))} |`;
  for (const t of w.byTopic) lines.push(row(`\`${t.topic.replace(/^bench[0-9a-z]+/, '<run>')}\``, t.role, t));
  lines.push(row('**all engine topics**', '', w.total));
  if (w.input) lines.push(row('(the commands themselves)', 'input', w.input));
  return lines.join('\n');
}

export function machineLine(r: BenchResults): string {
  const m = r.machine;
  return `${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB · Node ${m.node} · Kafka ${m.kafka} · PostgreSQL ${m.postgres} · preset ${String(r.settings['preset'])} · ${r.startedAt} (${r.durationS} s)`;
}

export function footnotes(r: BenchResults): string[] {
  const lines: string[] = [];
  const busiest = Math.max(0, ...Object.values(r.loadAverage));
  if (busiest > r.machine.cores)
    lines.push(
      `- the machine was busy during the run (1-min load average up to ${busiest} on ${r.machine.cores} cores): other work competed with the bench; read the ratios, not the absolute rates`,
    );
  for (const f of r.failures) lines.push(`- phase ${f.phase} failed: ${f.error}`);
  for (const [name, t] of [
    ['engine', r.engine],
    ['scale', r.scale],
  ] as const)
    if (t?.timedOut)
      lines.push(
        `- the ${name} phase timed out with ${n(t.count)} of ${n(t.transfers)} commands answered: its rates cover that part only (a busy machine; the timeouts are in bench/settings.ts)`,
      );
  return lines;
}

/** Everything the console and the README section show. */
export function markdownReport(r: BenchResults, resultsFile?: string): string {
  const parts = [markdownTable(r), '', machineLine(r), ...footnotes(r)];
  const curve = curveTable(r);
  if (curve) parts.push('', 'Latency curve (the generator in its own process, fixed rates):', '', curve);
  if (r.latencyPlot) parts.push('', `![visible latency against throughput](results/${r.latencyPlot})`);
  const writes = writesTable(r);
  if (writes)
    parts.push('', 'Written to the broker per input command, over the backlog (from its log folder):', '', writes);
  if (resultsFile) parts.push('', `Results: \`bench/results/${path.basename(resultsFile)}\`.`);
  parts.push('', ...r.notes.map((note) => `- ${note}`));
  return parts.join('\n');
}

/** The ratios issue 21 asks for, from measures of the same run. */
export function deriveRatios(results: BenchResults): void {
  const e = results.engine;
  if (e && results.rawRecordsPerSecond !== undefined)
    results.rawNormalized = rawNormalized(e.sustainedPerSecond, results.rawRecordsPerSecond);
  if (e?.cpuCores !== undefined && e.sustainedPerSecond > 0)
    results.engineCpuMicrosPerCommand = round((e.cpuCores / e.sustainedPerSecond) * 1e6, 1);
  if (e && results.scale && e.sustainedPerSecond > 0)
    results.scaleRatio = round(results.scale.sustainedPerSecond / e.sustainedPerSecond, 2);
  if (e && results.baseline && results.baseline.perSecond > 0)
    results.ratio = round(e.sustainedPerSecond / results.baseline.perSecond, 1);
}
