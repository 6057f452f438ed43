// Child-process entry of the baseline: options as JSON in BENCH_BASELINE, runs until SIGTERM/SIGINT,
// then prints its counts as one JSON line.
import { type BaselineOptions, runBaseline } from './processor.ts';

const options = JSON.parse(process.env.BENCH_BASELINE ?? '{}') as BaselineOptions;
const stop = new AbortController();
process.once('SIGTERM', () => stop.abort());
process.once('SIGINT', () => stop.abort());
const counts = await runBaseline(options, stop.signal);
console.log(JSON.stringify({ baseline: counts }));
