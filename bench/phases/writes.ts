// What one input command costs the broker: records (messages), transaction markers and bytes written
// per command, by topic (outputs, audit, legs, each changelog), read from the broker's log folder
// between a snapshot before the engine starts on the backlog and the end of the backlog.
import { Admin } from '@platformatic/kafka';
import type { Config } from '../../src/config/config.ts';
import type { BenchEnvironment } from '../environment.ts';
import { brokerLogDir, type SegmentSnapshot, snapshotSegments, tallySince, type WriteTally } from '../log-segments.ts';

export interface TopicWrites extends WriteTally {
  topic: string;
  role: string;
  recordsPerCommand: number;
  markersPerCommand: number;
  bytesPerCommand: number;
}

export interface WritesResult {
  /** Input commands of the window (the backlog's transfers). */
  commands: number;
  /** Every topic the engine wrote (the input topic is listed apart, as the size of a command). */
  byTopic: TopicWrites[];
  /** Sum over the engine's topics (not the input). */
  total: Omit<TopicWrites, 'topic' | 'role'>;
  input?: TopicWrites;
}

/** What a topic is to the engine, for the per-topic table. */
export function topicRole(topic: string, config: Pick<Config, 'appId' | 'topics'>): string {
  const t = config.topics;
  const named: Record<string, string> = {
    [t.input]: 'input',
    [t.credits]: 'legs',
    [t.completed]: 'outputs (completed)',
    [t.failed]: 'outputs (failed)',
    [t.audit]: 'audit',
    [t.dlq]: 'dlq',
    [`${config.appId}-instances`]: 'instances',
  };
  if (named[topic]) return named[topic];
  const changelog = new RegExp(`^${config.appId.replace(/[.]/g, '\\.')}-(.+)-changelog$`).exec(topic);
  return changelog ? `changelog ${changelog[1]}` : 'other';
}

const per = (value: number, commands: number) => (commands > 0 ? Math.round((value / commands) * 1000) / 1000 : 0);

/** Per-command figures from per-topic tallies (pure). */
export function writesPerCommand(
  tallies: ReadonlyMap<string, WriteTally>,
  config: Pick<Config, 'appId' | 'topics'>,
  commands: number,
): WritesResult {
  const rows: TopicWrites[] = [...tallies]
    .map(([topic, t]) => ({
      topic,
      role: topicRole(topic, config),
      ...t,
      recordsPerCommand: per(t.records, commands),
      markersPerCommand: per(t.markers, commands),
      bytesPerCommand: per(t.bytes, commands),
    }))
    .sort((a, b) => b.bytes - a.bytes);
  const engine = rows.filter((r) => r.role !== 'input' && r.records + r.markers > 0);
  const sum = (key: keyof WriteTally) => engine.reduce((a, r) => a + r[key], 0);
  const records = sum('records');
  const markers = sum('markers');
  const bytes = sum('bytes');
  return {
    commands,
    byTopic: engine,
    input: rows.find((r) => r.role === 'input'),
    total: {
      records,
      markers,
      batches: sum('batches'),
      bytes,
      recordsPerCommand: per(records, commands),
      markersPerCommand: per(markers, commands),
      bytesPerCommand: per(bytes, commands),
    },
  };
}

export interface WritesProbe {
  finish(commands: number): Promise<WritesResult>;
}

/** Takes the snapshot now; undefined when the broker's log folder is not on this machine. */
export async function startWritesProbe(
  bench: BenchEnvironment,
  brokerPid: number | undefined,
): Promise<WritesProbe | undefined> {
  const logDir = brokerLogDir(brokerPid);
  if (!logDir) return undefined;
  const topics = await runTopics(bench);
  const before: SegmentSnapshot = await snapshotSegments(logDir, topics);
  return {
    async finish(commands) {
      return writesPerCommand(await tallySince(logDir, topics, before), bench.config, commands);
    },
  };
}

async function runTopics(bench: BenchEnvironment): Promise<string[]> {
  const admin = new Admin({
    clientId: 'bankstream-bench-admin',
    bootstrapBrokers: bench.config.kafkaBrokers,
    timeout: 30_000,
  });
  try {
    const appTopics = new Set([bench.config.appId, ...Object.values(bench.config.topics)]);
    return (await admin.listTopics()).filter(
      (topic) => appTopics.has(topic) || topic.startsWith(`${bench.config.appId}-`),
    );
  } finally {
    await admin.close();
  }
}
