// Where the engine's CPU time goes: summarizes a V8 .cpuprofile (node --cpu-prof) by self time per
// function and per file. Usable alone: `node bench/profile.ts <file.cpuprofile> [top]`.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface Hotspot {
  name: string;
  where: string;
  selfPercent: number;
  selfMs: number;
  /** The callers the self time came through, most first (functions only). */
  callers?: string[];
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Share of samples where the process was idle (waiting on I/O). */
  idlePercent: number;
  gcPercent: number;
  functions: Hotspot[];
  files: Hotspot[];
  /** Self time grouped by area: engine runtime, stores, bank, Kafka client, JSON, LevelDB, Node internals. */
  areas: Hotspot[];
}

export async function summarizeProfile(file: string, top = 20): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const selfMs = selfTimes(profile);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totalMs = [...selfMs.values()].reduce((a, b) => a + b, 0);
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const frameKey = (id: number | undefined) => {
    const frame = id === undefined ? undefined : byId.get(id)?.callFrame;
    return frame ? `${frame.functionName || '(anonymous)'} ${shortUrl(frame.url)}:${frame.lineNumber + 1}` : '(root)';
  };
  const callers = new Map<string, Map<string, number>>();
  const fn = new Map<string, Hotspot>();
  const files = new Map<string, Hotspot>();
  const areas = new Map<string, Hotspot>();
  let idle = 0;
  let gc = 0;
  for (const [id, ms] of selfMs) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === '(idle)') idle += ms;
    if (frame.functionName === '(garbage collector)') gc += ms;
    const where = shortUrl(frame.url);
    const name = frame.functionName || '(anonymous)';
    const key = `${name} ${where}:${frame.lineNumber + 1}`;
    add(fn, key, name, `${where}:${frame.lineNumber + 1}`, ms);
    const byCaller = callers.get(key) ?? new Map<string, number>();
    const caller = frameKey(parentOf.get(id));
    byCaller.set(caller, (byCaller.get(caller) ?? 0) + ms);
    callers.set(key, byCaller);
    add(files, where || name, where || name, '', ms);
    const area = areaOf(frame.url, name);
    add(areas, area, area, '', ms);
  }
  const busy = totalMs - idle;
  const rank = (m: Map<string, Hotspot>, n: number) =>
    [...m.values()]
      .filter((h) => h.name !== '(idle)')
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, n)
      .map((h) => ({ ...h, selfMs: Math.round(h.selfMs), selfPercent: round1((100 * h.selfMs) / Math.max(busy, 1)) }));
  const functions = rank(fn, top).map((h) => {
    const byCaller = callers.get(`${h.name} ${h.where}`) ?? new Map<string, number>();
    return {
      ...h,
      callers: [...byCaller]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([caller, ms]) => `${caller} (${round1((100 * ms) / Math.max(busy, 1))}%)`),
    };
  });
  return {
    file,
    totalMs: Math.round(totalMs),
    idlePercent: round1((100 * idle) / Math.max(totalMs, 1)),
    gcPercent: round1((100 * gc) / Math.max(busy, 1)),
    functions,
    files: rank(files, top),
    areas: rank(areas, 12),
  };
}

function selfTimes(profile: CpuProfile): Map<number, number> {
  const out = new Map<number, number>();
  if (profile.samples && profile.timeDeltas) {
    for (let i = 0; i < profile.samples.length; i++) {
      const id = profile.samples[i]!;
      out.set(id, (out.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
    }
    return out;
  }
  const hits = profile.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0);
  const interval = (profile.endTime - profile.startTime) / 1000 / Math.max(hits, 1);
  for (const n of profile.nodes) out.set(n.id, (n.hitCount ?? 0) * interval);
  return out;
}

function add(map: Map<string, Hotspot>, key: string, name: string, where: string, ms: number): void {
  const entry = map.get(key) ?? { name, where, selfMs: 0, selfPercent: 0 };
  entry.selfMs += ms;
  map.set(key, entry);
}

function shortUrl(url: string): string {
  if (!url) return '';
  const clean = url.replace(/^file:\/\//, '');
  const nm = clean.lastIndexOf('node_modules/');
  if (nm >= 0) return clean.slice(nm + 'node_modules/'.length);
  const src = clean.search(/\/(src|bench|test)\//);
  return src >= 0 ? clean.slice(src + 1) : clean;
}

function areaOf(url: string, name: string): string {
  if (name === '(garbage collector)') return 'GC';
  if (name === '(program)' || name === '(idle)') return name;
  if (url.includes('/src/runtime/') || url.includes('/src/kafka/')) return 'engine runtime (src/runtime, src/kafka)';
  if (url.includes('/src/stores/')) return 'stores (src/stores)';
  if (url.includes('/src/http/') || url.includes('/koa') || url.includes('/jose/'))
    return 'HTTP API (src/http, koa, jose)';
  if (url.includes('/src/bank/')) return 'bank (src/bank)';
  if (url.includes('/src/topology/')) return 'topology (src/topology)';
  if (url.includes('@platformatic/kafka')) return 'Kafka client (@platformatic/kafka)';
  if (url.includes('classic-level') || url.includes('abstract-level')) return 'LevelDB binding';
  if (url.includes('node_modules')) return 'other dependencies';
  if (url.startsWith('node:')) return 'Node internals';
  if (name === 'parse' || name === 'stringify') return 'JSON';
  return url ? 'other' : `native (${name})`;
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

export function formatProfile(summary: ProfileSummary, top = 15): string {
  const lines = [
    `profile ${path.basename(summary.file)}: ${summary.totalMs} ms sampled, idle ${summary.idlePercent}%, GC ${summary.gcPercent}% of busy time`,
    '',
    'self time by area (% of busy time):',
  ];
  for (const a of summary.areas) lines.push(`  ${String(a.selfPercent).padStart(5)}%  ${a.name}`);
  lines.push('', 'top functions by self time:');
  for (const f of summary.functions.slice(0, top)) {
    lines.push(`  ${String(f.selfPercent).padStart(5)}%  ${f.name}  ${f.where}`);
    if (f.callers && f.callers.length > 0 && f.name !== '(garbage collector)' && f.name !== '(program)')
      lines.push(`           ← ${f.callers.join(' · ')}`);
  }
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node bench/profile.ts <file.cpuprofile> [top]');
    process.exit(2);
  }
  console.log(
    formatProfile(await summarizeProfile(file, Number(process.argv[3] ?? 25)), Number(process.argv[3] ?? 25)),
  );
}
