// The latency curve's SVG (bench/svg-chart.ts): its shape, not its looks.
import { describe, expect, it } from 'vitest';
import { escapeXml, latencyChartSvg, linearStep, logTicks } from '../../../bench/svg-chart.ts';

const points = [
  { throughput: 6000, p50Ms: 120, p99Ms: 240, p999Ms: 400 },
  { throughput: 1200, p50Ms: 90, p99Ms: 150, p999Ms: 180 },
  { throughput: 9000, p50Ms: 300, p99Ms: 2500, p999Ms: 4000 },
];

function polyline(svg: string, series: string): Array<[number, number]> {
  const match = new RegExp(`data-series="${series.replace('.', '\\.')}"[^>]* points="([^"]+)"`).exec(svg);
  if (!match) throw new Error(`no ${series} line`);
  return match[1]!.split(' ').map((pair) => pair.split(',').map(Number) as [number, number]);
}

describe('latencyChartSvg', () => {
  const svg = latencyChartSvg(points, { title: 'Latency <1 instance> & "more"', subtitle: 'machine' });

  it('is one svg document with a line per percentile, points left to right by throughput', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    for (const series of ['p50', 'p99', 'p99.9']) {
      const line = polyline(svg, series);
      expect(line).toHaveLength(3);
      expect(line.map(([x]) => x)).toEqual([...line.map(([x]) => x)].sort((a, b) => a - b));
    }
    expect(svg.match(/<circle /g)).toHaveLength(9);
  });

  it('draws a higher latency higher up (a smaller y), within the plot', () => {
    const p50 = polyline(svg, 'p50');
    const p999 = polyline(svg, 'p99.9');
    for (let i = 0; i < 3; i++) expect(p999[i]![1]).toBeLessThan(p50[i]![1]);
    for (const [x, y] of [...p50, ...p999]) {
      expect(x).toBeGreaterThanOrEqual(0);
      expect(y).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThanOrEqual(720);
      expect(y).toBeLessThanOrEqual(420);
    }
  });

  it('draws the threshold line at its latency, between the p50 and p99.9 lines where it lies between them', () => {
    const withTarget = latencyChartSvg(points, { title: 't', threshold: { ms: 250, label: 'target' } });
    const y = Number(/data-threshold="250" x1="[\d.]+" y1="([\d.]+)"/.exec(withTarget)?.[1]);
    const p50 = polyline(withTarget, 'p50');
    const p999 = polyline(withTarget, 'p99.9');
    expect(y).toBeLessThan(p50[1]![1]);
    expect(y).toBeGreaterThan(p999[1]![1]);
  });

  it('escapes the title', () => {
    expect(svg).toContain(escapeXml('Latency <1 instance> & "more"'));
    expect(svg).not.toContain('<1 instance>');
  });

  it('draws a single point and zero latencies without NaN', () => {
    const one = latencyChartSvg([{ throughput: 100, p50Ms: 0, p99Ms: 0, p999Ms: 0 }], { title: 't' });
    expect(one).not.toContain('NaN');
    expect(one).not.toContain('Infinity');
  });
});

describe('axes', () => {
  it('log ticks are 1-2-5 steps covering the range', () => {
    expect(logTicks(90, 4000)).toEqual([50, 100, 200, 500, 1000, 2000, 5000]);
  });

  it('linear steps are 1-2-5 multiples near max/5', () => {
    expect(linearStep(9000)).toBe(2000);
    expect(linearStep(1)).toBe(0.2);
    expect(linearStep(0)).toBe(1);
  });
});
