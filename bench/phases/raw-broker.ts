// The broker's limit, measured in the run: ProducerPerformance on a topic of its own with the engine's
// partition count (acks=all, fixed-size records), deleted right after so its bytes do not stay on disk.
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { Admin } from '@platformatic/kafka';
import { type BenchEnvironment, localBrokerPid, processCpuSeconds } from '../environment.ts';
import { kafkaLibsDir, type ProducerPerformanceResult, runProducerPerformance } from '../producer-perf.ts';
import { round } from '../series.ts';
import type { BenchSettings } from '../settings.ts';

export type RawBrokerResult = ProducerPerformanceResult & {
  partitions: number;
  recordSize: number;
  brokerCpuCores?: number;
};

export async function measureRawBroker(bench: BenchEnvironment, settings: BenchSettings): Promise<RawBrokerResult> {
  const brokerPid = localBrokerPid();
  const libsDir = kafkaLibsDir(brokerPid);
  if (!libsDir) throw new Error('no Kafka jars found (run scripts/kafka.sh start once, or set BANKSTREAM_HOME)');
  // No "-" after the prefix: the engine's own topics are "<prefix>-…", and the writes probe lists those.
  const topic = `${bench.prefix}raw`;
  const admin = new Admin({
    clientId: 'bankstream-bench-admin',
    bootstrapBrokers: bench.config.kafkaBrokers,
    timeout: 30_000,
  });
  try {
    await admin.createTopics({ topics: [topic], partitions: settings.partitions, replicas: 1 });
    const cpuBefore = processCpuSeconds(brokerPid);
    const started = performance.now();
    const logFile = path.join(bench.logDir, 'producer-performance.log');
    const result = await runProducerPerformance({
      libsDir,
      brokers: bench.config.kafkaBrokers,
      topic,
      records: settings.rawRecords,
      recordSize: settings.rawRecordSize,
      timeoutMs: 180_000,
      logFile: (text) => appendFileSync(logFile, text),
    });
    const cpuAfter = processCpuSeconds(brokerPid);
    const seconds = (performance.now() - started) / 1000;
    return {
      ...result,
      partitions: settings.partitions,
      recordSize: settings.rawRecordSize,
      // Over the tool's whole run, JVM start included: a lower bound of the broker's cores while it writes.
      brokerCpuCores:
        cpuBefore === undefined || cpuAfter === undefined ? undefined : round((cpuAfter - cpuBefore) / seconds, 2),
    };
  } finally {
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.close();
  }
}
