// Latency against throughput as a small SVG line chart (one line per percentile, log-scale latency
// axis so a bend from tens of milliseconds to seconds stays readable). Written by hand: a few dozen
// lines of SVG, no charting library on a server without a DOM.

export interface CurvePoint {
  /** Commands per second (x). */
  throughput: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
}

export interface ChartOptions {
  title: string;
  subtitle?: string;
  /** A dashed horizontal line, e.g. a latency target. */
  threshold?: { ms: number; label: string };
  width?: number;
  height?: number;
}

const SERIES = [
  { key: 'p50Ms', label: 'p50', color: '#1b7837' },
  { key: 'p99Ms', label: 'p99', color: '#d95f02' },
  { key: 'p999Ms', label: 'p99.9', color: '#7570b3' },
] as const;

const MARGIN = { left: 70, right: 110, top: 50, bottom: 50 };

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Ticks 1, 2, 5 × 10^k covering [min, max] (latencies in ms, at least 1). */
export function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let decade = 10 ** Math.floor(Math.log10(Math.max(1, min))); decade <= max * 10; decade *= 10)
    for (const m of [1, 2, 5]) {
      const tick = m * decade;
      if (tick >= min / 2 && tick <= max * 2) ticks.push(tick);
    }
  return ticks;
}

/** A "nice" step (1, 2, 5 × 10^k) giving about `count` ticks from 0 to max. */
export function linearStep(max: number, count = 5): number {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const decade = 10 ** Math.floor(Math.log10(raw));
  return ([1, 2, 5, 10].map((m) => m * decade).find((s) => s >= raw) ?? 10 * decade) as number;
}

const fmt = (value: number) => (value >= 1000 ? `${value / 1000}k` : String(value));

export function latencyChartSvg(points: readonly CurvePoint[], options: ChartOptions): string {
  const width = options.width ?? 720;
  const height = options.height ?? 420;
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const sorted = [...points].sort((a, b) => a.throughput - b.throughput);
  const latencies = [
    ...sorted.flatMap((p) => [p.p50Ms, p.p99Ms, p.p999Ms]),
    ...(options.threshold ? [options.threshold.ms] : []),
  ].map((v) => Math.max(1, v));
  const xStep = linearStep(Math.max(1, ...sorted.map((p) => p.throughput)));
  const xMax = Math.ceil(Math.max(1, ...sorted.map((p) => p.throughput)) / xStep) * xStep;
  const yTicks = logTicks(Math.min(...latencies, 10), Math.max(...latencies, 10));
  const yMin = yTicks[0]!;
  const yMax = yTicks.at(-1)!;
  const x = (v: number) => MARGIN.left + (v / xMax) * plotW;
  const y = (v: number) =>
    MARGIN.top +
    plotH -
    ((Math.log10(Math.max(1, v)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * plotH;
  const r = (v: number) => v.toFixed(1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${MARGIN.left}" y="22" font-size="15" font-weight="bold">${escapeXml(options.title)}</text>`,
  ];
  if (options.subtitle) out.push(`<text x="${MARGIN.left}" y="39" fill="#555">${escapeXml(options.subtitle)}</text>`);
  for (let v = 0; v <= xMax; v += xStep) {
    out.push(
      `<line x1="${r(x(v))}" y1="${MARGIN.top}" x2="${r(x(v))}" y2="${MARGIN.top + plotH}" stroke="#eee"/>`,
      `<text x="${r(x(v))}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${fmt(v)}</text>`,
    );
  }
  for (const v of yTicks) {
    out.push(
      `<line x1="${MARGIN.left}" y1="${r(y(v))}" x2="${MARGIN.left + plotW}" y2="${r(y(v))}" stroke="#eee"/>`,
      `<text x="${MARGIN.left - 6}" y="${r(y(v) + 4)}" text-anchor="end">${v >= 1000 ? `${v / 1000} s` : `${v} ms`}</text>`,
    );
  }
  out.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${height - 12}" text-anchor="middle">throughput (commands/s)</text>`,
    `<text transform="translate(16 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">visible latency (log scale)</text>`,
  );
  if (options.threshold) {
    const ty = r(y(options.threshold.ms));
    out.push(
      `<line data-threshold="${options.threshold.ms}" x1="${MARGIN.left}" y1="${ty}" x2="${MARGIN.left + plotW}" y2="${ty}" stroke="#c00" stroke-dasharray="6 4"/>`,
      `<text x="${MARGIN.left + plotW - 4}" y="${r(y(options.threshold.ms) - 5)}" text-anchor="end" fill="#c00">${escapeXml(options.threshold.label)}</text>`,
    );
  }
  SERIES.forEach((series, i) => {
    const coords = sorted.map((p) => `${r(x(p.throughput))},${r(y(p[series.key]))}`);
    out.push(
      `<polyline data-series="${series.label}" fill="none" stroke="${series.color}" stroke-width="2" points="${coords.join(' ')}"/>`,
    );
    for (const p of sorted)
      out.push(`<circle cx="${r(x(p.throughput))}" cy="${r(y(p[series.key]))}" r="3" fill="${series.color}"/>`);
    const ly = MARGIN.top + 10 + i * 18;
    out.push(
      `<line x1="${MARGIN.left + plotW + 12}" y1="${ly}" x2="${MARGIN.left + plotW + 32}" y2="${ly}" stroke="${series.color}" stroke-width="2"/>`,
      `<text x="${MARGIN.left + plotW + 38}" y="${ly + 4}">${series.label}</text>`,
    );
  });
  out.push('</svg>', '');
  return out.join('\n');
}
