// The broker's own limit on this machine, measured beside the engine: Kafka's ProducerPerformance tool
// (org.apache.kafka.tools, in the jars scripts/kafka.sh fetched) writes fixed-size records as fast as it
// can with acks=all. Its records/s is the yardstick the engine's commands/s are divided by.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface ProducerPerformanceResult {
  records: number;
  recordsPerSecond: number;
  mbPerSecond: number;
  avgLatencyMs: number;
  maxLatencyMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  p999Ms: number;
}

/**
 * The tool's final line, e.g. "300000 records sent, 78247.3 records/sec (14.92 MB/sec), 130.52 ms avg
 * latency, 676.00 ms max latency, 77 ms 50th, 399 ms 95th, 578 ms 99th, 615 ms 99.9th." (the lines it
 * prints every 5 s have no percentiles and are skipped).
 */
export function parseProducerPerformance(output: string): ProducerPerformanceResult {
  const pattern =
    /(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th/g;
  const last = [...output.matchAll(pattern)].at(-1);
  if (!last) throw new Error(`no ProducerPerformance summary in its output: ${output.slice(-500)}`);
  const [, records, rate, mb, avg, max, p50, p95, p99, p999] = last.map(Number);
  return {
    records: records!,
    recordsPerSecond: Math.round(rate!),
    mbPerSecond: mb!,
    avgLatencyMs: avg!,
    maxLatencyMs: max!,
    p50Ms: p50!,
    p95Ms: p95!,
    p99Ms: p99!,
    p999Ms: p999!,
  };
}

/** Sustained engine commands/s per raw broker record/s (issue 21's yardstick), 4 significant digits. */
export function rawNormalized(commandsPerSecond: number, rawRecordsPerSecond: number): number | undefined {
  if (!(rawRecordsPerSecond > 0) || !(commandsPerSecond >= 0)) return undefined;
  return Number((commandsPerSecond / rawRecordsPerSecond).toPrecision(4));
}

/** The Kafka jars: the running local broker's classpath, else scripts/kafka.sh's default folder. */
export function kafkaLibsDir(brokerPid: number | undefined): string | undefined {
  if (brokerPid !== undefined) {
    try {
      const args = readFileSync(`/proc/${brokerPid}/cmdline`, 'utf8').split('\0');
      const classpath = args[args.indexOf('-cp') + 1];
      if (args.includes('-cp') && classpath) {
        const dir = path.dirname(classpath.split(':')[0]!);
        if (existsSync(dir)) return dir;
      }
    } catch {
      // Not Linux, or the broker is gone: fall through.
    }
  }
  const home = process.env.BANKSTREAM_HOME ?? path.join(os.homedir(), '.bankstream');
  const dir = path.join(home, `kafka-${process.env.KAFKA_VERSION ?? '4.1.1'}`, 'libs');
  return existsSync(dir) ? dir : undefined;
}

export interface ProducerPerformanceOptions {
  libsDir: string;
  brokers: string[];
  topic: string;
  records: number;
  recordSize: number;
  timeoutMs: number;
  logFile?: (text: string) => void;
}

export async function runProducerPerformance(options: ProducerPerformanceOptions): Promise<ProducerPerformanceResult> {
  const args = [
    '-Xmx512m',
    '-cp',
    `${options.libsDir}/*`,
    'org.apache.kafka.tools.ProducerPerformance',
    '--topic',
    options.topic,
    '--num-records',
    String(options.records),
    '--record-size',
    String(options.recordSize),
    '--throughput',
    '-1',
    '--producer-props',
    `bootstrap.servers=${options.brokers.join(',')}`,
    'acks=all',
  ];
  const child = spawn('java', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const onData = (chunk: Buffer) => {
    output += chunk.toString('utf8');
    options.logFile?.(chunk.toString('utf8'));
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('error', (error) => (clearTimeout(timer), reject(error)));
    child.on('exit', (exitCode) => (clearTimeout(timer), resolve(exitCode)));
  });
  if (code !== 0) throw new Error(`ProducerPerformance exited with ${code}: ${output.slice(-500)}`);
  return parseProducerPerformance(output);
}
