// `bankstream offsets reset`: the operator's way out of a stopped partition (offsets missing with state,
// offset out of range; see src/kafka/offset-reset.ts and docs/operations.md). Like Kafka's
// kafka-consumer-groups --reset-offsets: it plans by default and changes nothing without `execute`, and it
// refuses while the group has active members (a running member would overwrite the reset with its own
// position at its next commit). The processor's offsets are the Kafka group's committed offsets; the
// sink's live in Postgres (sink_offsets).
import { type Admin, ListOffsetTimestamps } from '@platformatic/kafka';
import type pg from 'pg';
import type { Config } from '../config/config.ts';
import { connectPg } from '../sinks/pg-connection.ts';
import { createAdmin } from './topics.ts';

export type OffsetGroup = 'processor' | 'sink';
/** earliest = the log start, latest = the last stable offset (what read_committed reads up to), or an offset. */
export type ResetTarget = 'earliest' | 'latest' | bigint;

export interface ResetRequest {
  group: OffsetGroup;
  /** One partition, or 'all' (every partition of each topic: offsets expired for the whole group). */
  partition: number | 'all';
  /** Default: every topic of the group (input and credits for the processor, the outcome topics for the sink). */
  topics?: string[];
  to: ResetTarget;
  execute: boolean;
}

export interface ResetLine {
  topic: string;
  partition: number;
  /** null when nothing is committed (or stored). */
  current: bigint | null;
  next: bigint;
  logStart: bigint;
  logEnd: bigint;
}

export interface ResetPlan {
  groupId: string;
  group: OffsetGroup;
  executed: boolean;
  lines: ResetLine[];
}

export class OffsetResetError extends Error {
  readonly code:
    | 'group_active'
    | 'offset_outside_log'
    | 'unknown_topic'
    | 'partition_unknown'
    | 'offset_needs_partition';
  constructor(code: OffsetResetError['code'], message: string) {
    super(message);
    this.name = 'OffsetResetError';
    this.code = code;
  }
}

/** Parses a --to value: earliest, latest or a non-negative offset. */
export function parseResetTarget(text: string): ResetTarget | undefined {
  if (text === 'earliest' || text === 'latest') return text;
  return /^\d{1,19}$/.test(text) && BigInt(text) <= 2n ** 63n - 1n ? BigInt(text) : undefined;
}

export function groupIdOf(config: Config, group: OffsetGroup): string {
  return group === 'processor' ? config.appId : config.sinkGroupId;
}

export function topicsOf(config: Config, group: OffsetGroup): string[] {
  return group === 'processor'
    ? [config.topics.input, config.topics.credits]
    : [config.topics.completed, config.topics.failed, config.topics.audit];
}

/** Plans the reset and, with `execute`, applies it. Refuses while the group has active members. */
export async function resetOffsets(config: Config, request: ResetRequest): Promise<ResetPlan> {
  const groupId = groupIdOf(config, request.group);
  const known = topicsOf(config, request.group);
  const topics = request.topics ?? known;
  const unknown = topics.filter((t) => !known.includes(t));
  if (unknown.length > 0)
    throw new OffsetResetError(
      'unknown_topic',
      `${unknown.join(', ')} is not a topic of the ${request.group} group (${known.join(', ')})`,
    );
  if (request.partition === 'all' && typeof request.to === 'bigint')
    throw new OffsetResetError(
      'offset_needs_partition',
      'an explicit offset is for one partition; with every partition use earliest or latest',
    );
  const admin = createAdmin(config, 'offsets');
  try {
    await assertGroupInactive(admin, groupId);
    const targets = await targetPartitions(admin, topics, request.partition);
    const [starts, ends] = await Promise.all([
      listOffsets(admin, targets, ListOffsetTimestamps.EARLIEST),
      listOffsets(admin, targets, ListOffsetTimestamps.LATEST),
    ]);
    const current =
      request.group === 'processor'
        ? await committedOffsets(admin, groupId, targets)
        : await withDatabase(config, (db) => storedOffsets(db, groupId, topics));
    const lines = targets.map(({ topic, partition }) => {
      const key = tpKey(topic, partition);
      return planLine(topic, partition, request.to, current.get(key) ?? null, starts.get(key), ends.get(key));
    });
    if (request.execute) {
      // Checked again right before writing: a member may have joined while the plan was made.
      await assertGroupInactive(admin, groupId);
      if (request.group === 'processor') await commitProcessorOffsets(admin, groupId, lines);
      else await withDatabase(config, (db) => storeSinkOffsets(db, groupId, lines));
    }
    return { groupId, group: request.group, executed: request.execute, lines };
  } finally {
    await admin.close().catch(() => undefined);
  }
}

interface TopicPartition {
  topic: string;
  partition: number;
}

function tpKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

/** The (topic, partition) pairs to reset; a partition a topic does not have is an error. */
async function targetPartitions(admin: Admin, topics: string[], partition: number | 'all'): Promise<TopicPartition[]> {
  const metadata = await admin.metadata({ topics }).catch((error: unknown) => {
    throw new OffsetResetError(
      'partition_unknown',
      `cannot read the metadata of ${topics.join(', ')}: ${error instanceof Error ? error.message : String(error)}`,
    );
  });
  const out: TopicPartition[] = [];
  for (const topic of topics) {
    const count = metadata.topics.get(topic)?.partitionsCount ?? 0;
    if (partition === 'all') for (let p = 0; p < count; p++) out.push({ topic, partition: p });
    else if (partition < count) out.push({ topic, partition });
    else throw new OffsetResetError('partition_unknown', `${topic} has ${count} partitions, no partition ${partition}`);
  }
  return out;
}

function planLine(
  topic: string,
  partition: number,
  to: ResetTarget,
  current: bigint | null,
  logStart: bigint | undefined,
  logEnd: bigint | undefined,
): ResetLine {
  if (logStart === undefined || logEnd === undefined)
    throw new OffsetResetError('partition_unknown', `the offsets of ${topic}-${partition} could not be listed`);
  const next = to === 'earliest' ? logStart : to === 'latest' ? logEnd : to;
  if (next < logStart || next > logEnd)
    throw new OffsetResetError(
      'offset_outside_log',
      `offset ${next} is outside ${topic}-${partition}, which holds offsets ${logStart} to ${logEnd}`,
    );
  return { topic, partition, current, next, logStart, logEnd };
}

async function assertGroupInactive(admin: Admin, groupId: string): Promise<void> {
  const groups = await admin.describeGroups({ groups: [groupId] });
  const group = groups.get(groupId);
  const members = group?.members.size ?? 0;
  if (members > 0) {
    throw new OffsetResetError(
      'group_active',
      `group ${groupId} has ${members} active member(s) (state ${group?.state}); stop every instance of the group first (a stopped static member stays one for SESSION_TIMEOUT_MS, or until \`bankstream group leave --instance <id>\`), then reset`,
    );
  }
}

async function listOffsets(admin: Admin, targets: TopicPartition[], timestamp: bigint): Promise<Map<string, bigint>> {
  const byTopic = groupByTopic(targets);
  const listed = await admin.listOffsets({
    topics: [...byTopic].map(([name, partitions]) => ({
      name,
      partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp })),
    })),
    isolationLevel: 1,
  });
  const out = new Map<string, bigint>();
  for (const topic of listed) for (const p of topic.partitions) out.set(tpKey(topic.name, p.partitionIndex), p.offset);
  return out;
}

async function committedOffsets(
  admin: Admin,
  groupId: string,
  targets: TopicPartition[],
): Promise<Map<string, bigint>> {
  const topics = [...groupByTopic(targets)].map(([name, partitionIndexes]) => ({ name, partitionIndexes }));
  const groups = await admin.listConsumerGroupOffsets({ groups: [{ groupId, topics }] });
  const out = new Map<string, bigint>();
  for (const group of groups) {
    for (const topic of group.topics)
      for (const p of topic.partitions)
        if (p.committedOffset >= 0n) out.set(tpKey(topic.name, p.partitionIndex), p.committedOffset);
  }
  return out;
}

function groupByTopic(targets: TopicPartition[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const { topic, partition } of targets) out.set(topic, [...(out.get(topic) ?? []), partition]);
  return out;
}

async function commitProcessorOffsets(admin: Admin, groupId: string, lines: ResetLine[]): Promise<void> {
  const byTopic = new Map<string, Array<{ partition: number; offset: bigint }>>();
  for (const l of lines)
    byTopic.set(l.topic, [...(byTopic.get(l.topic) ?? []), { partition: l.partition, offset: l.next }]);
  await admin.alterConsumerGroupOffsets({
    groupId,
    topics: [...byTopic].map(([name, partitionOffsets]) => ({ name, partitionOffsets })),
  });
}

async function storedOffsets(db: pg.ClientBase, groupId: string, topics: string[]): Promise<Map<string, bigint>> {
  const { rows } = await db.query<{ topic: string; partition: number; next_offset: string }>(
    'SELECT topic, partition, next_offset FROM sink_offsets WHERE group_id = $1 AND topic = ANY($2::text[])',
    [groupId, topics],
  );
  return new Map(rows.map((r) => [tpKey(r.topic, r.partition), BigInt(r.next_offset)]));
}

/** Sets the rows outright (the sink's own writes only move forward, GREATEST; a reset may move back). */
async function storeSinkOffsets(db: pg.ClientBase, groupId: string, lines: ResetLine[]): Promise<void> {
  await db.query(
    `INSERT INTO sink_offsets (group_id, topic, partition, next_offset, updated_at)
     SELECT $1, topic, partition, next_offset, now() FROM unnest($2::text[], $3::integer[], $4::bigint[]) AS o(topic, partition, next_offset)
     ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at`,
    [groupId, lines.map((l) => l.topic), lines.map((l) => l.partition), lines.map((l) => l.next.toString())],
  );
}

async function withDatabase<T>(config: Config, use: (db: pg.Client) => Promise<T>): Promise<T> {
  const db = await connectPg(config.databaseUrl, config.postgresTls, {
    target: 'read-write',
    client: { application_name: `${config.appId}-offsets`, connectionTimeoutMillis: 5000, statement_timeout: 30_000 },
  });
  try {
    return await use(db);
  } finally {
    await db.end().catch(() => undefined);
  }
}

/** The plan as a table, one line per topic-partition. */
export function formatPlan(plan: ResetPlan): string {
  const header = `${plan.executed ? 'reset' : 'plan (dry run; add --execute to apply)'}: group ${plan.groupId} (${plan.group})`;
  const rows = plan.lines.map(
    (l) => `${l.topic}\t${l.partition}\tcurrent=${l.current ?? 'none'}\tnew=${l.next}\tlog=${l.logStart}..${l.logEnd}`,
  );
  return [header, ...rows].join('\n');
}
