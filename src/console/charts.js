// The flow charts: uPlot time series of the instance's samples (one point every sampling interval).
import uPlot from './vendor/uPlot.esm.js';
import { el } from './views.js';

const PALETTE = [
  '#2563eb',
  '#16a34a',
  '#dc2626',
  '#d97706',
  '#7c3aed',
  '#0891b2',
  '#db2777',
  '#65a30d',
  '#475569',
  '#ea580c',
];
const HEIGHT = 150;

/** Each chart: a title and the series it draws from a list of samples. */
const CHARTS = [
  {
    id: 'rates',
    title: 'commands/s (API) and records processed/s',
    series: () => [
      ['commands/s', (s) => s.commandsPerS],
      ['records/s', (s) => s.recordsPerS],
    ],
  },
  {
    id: 'outcomes',
    title: 'outcomes/s by code',
    series: (samples) =>
      [...new Set(samples.flatMap((s) => Object.keys(s.outcomesPerS)))]
        .sort()
        .map((code) => [code, (s) => s.outcomesPerS[code] ?? 0]),
  },
  {
    id: 'commits',
    title: 'commits/s and mean commit ms',
    series: () => [
      ['commits/s', (s) => s.commitsPerS],
      ['commit ms', (s) => s.commitMsAvg],
    ],
  },
  {
    id: 'latency',
    title: 'end-to-end latency ms (p50, p99)',
    series: () => [
      ['p50 ms', (s) => s.latencyP50Ms],
      ['p99 ms', (s) => s.latencyP99Ms],
    ],
  },
  {
    id: 'lag',
    title: 'consumer lag by partition (records)',
    series: (samples) =>
      [...new Set(samples.flatMap((s) => Object.keys(s.lag)))]
        .sort((a, b) => Number(a) - Number(b))
        .map((p) => [`p${p}`, (s) => s.lag[p] ?? null]),
  },
  {
    id: 'sink',
    title: 'sink rows/s and sink lag (records)',
    series: () => [
      ['rows/s', (s) => s.sinkRowsPerS],
      ['lag', (s) => s.sinkLag],
    ],
  },
];

const built = new Map();

export function renderCharts(samples) {
  const container = document.getElementById('charts');
  for (const chart of CHARTS) {
    const series = chart.series(samples);
    const key = series.map(([name]) => name).join('|');
    let entry = built.get(chart.id);
    if (!entry) {
      const box = el(
        'div',
        { class: 'chart', 'data-chart': chart.id },
        el('h3', {}, chart.title),
        el('div', { class: 'plot' }),
      );
      container.append(box);
      entry = { box, plot: null, key: null };
      built.set(chart.id, entry);
    }
    const data = [samples.map((s) => s.t / 1000), ...series.map(([, read]) => samples.map(read))];
    entry.box.dataset.points = String(samples.length);
    if (entry.key !== key || !entry.plot) {
      entry.plot?.destroy();
      const target = entry.box.querySelector('.plot');
      target.replaceChildren();
      const width = Math.max(240, target.clientWidth || entry.box.clientWidth - 16);
      entry.plot = new uPlot(
        {
          width,
          height: HEIGHT,
          legend: { live: false },
          cursor: { drag: { x: false, y: false } },
          scales: { x: { time: true } },
          axes: [{}, { size: 50 }],
          series: [
            {},
            ...series.map(([name], i) => ({
              label: name,
              stroke: PALETTE[i % PALETTE.length],
              width: 1.5,
              spanGaps: false,
            })),
          ],
        },
        data,
        target,
      );
      entry.key = key;
    } else {
      entry.plot.setData(data);
    }
  }
}

/** Charts follow the width of their box. */
export function resizeCharts() {
  for (const entry of built.values()) {
    const target = entry.box.querySelector('.plot');
    if (entry.plot && target.clientWidth > 0) entry.plot.setSize({ width: target.clientWidth, height: HEIGHT });
  }
}
