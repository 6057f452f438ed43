// Where a partition starts when it has no committed position, and what stops it: offsets fail closed.
//
// Kafka's auto.offset.reset=earliest replays everything retained whenever a committed offset is missing
// (a new application id, offsets expired after a long outage, a deleted group). For a processor whose
// dedup entries expire, a replay past the dedup retention applies money twice. So the rule here:
//   - no committed offset, and the task holds no state (no store data after restoring its changelogs):
//     a brand-new application; it starts at the log start offset (OFFSET_RESET=safe, the default);
//   - no committed offset, but state: the task does not start (offsets_missing) and says why;
//   - a position outside the log (out of range) is never "reset" silently either: that partition stops
//     (offset_out_of_range), the others go on, and an operator moves it with `bankstream offsets reset`.
// OFFSET_RESET=earliest keeps Kafka's behavior (start at earliest whatever the state: an operator's
// conscious choice for one start); OFFSET_RESET=none refuses any missing offset, even for a new application.

import type { OffsetResetPolicy } from '../config/config.ts';

export { OFFSET_RESET_POLICIES, type OffsetResetPolicy } from '../config/config.ts';

import type { PartitionStop } from './partition-stop.ts';

export type { PartitionStop, PartitionStopCode } from './partition-stop.ts';

/** The `bankstream offsets reset` command line for a partition ("processor" or "sink" group). */
export function resetCommand(group: 'processor' | 'sink', topic: string, partition: number, to: string): string {
  return `bankstream offsets reset --group ${group} --topic ${topic} --partition ${partition} --to ${to}`;
}

export interface StartInput {
  policy: OffsetResetPolicy;
  group: 'processor' | 'sink';
  partition: number;
  /** Committed next offset per source topic; -1n (or absent) when none is committed. */
  committed: ReadonlyMap<string, bigint>;
  /** Log start offset per source topic (where "earliest" is). */
  earliest: ReadonlyMap<string, bigint>;
  topics: readonly string[];
  /** The task (or sink) already holds state for this partition: a missing offset is then not "new". */
  hasState: boolean;
  /** What the state is, for the message ("3 stores with data", "this database holds the group's offsets"). */
  stateDescription: string;
}

export type StartDecision = { ok: true; positions: Map<string, bigint> } | { ok: false; stops: PartitionStop[] };

/** The start positions of one partition's source topics, or why it must not start. */
export function decideStart(input: StartInput): StartDecision {
  const positions = new Map<string, bigint>();
  const missing: string[] = [];
  for (const topic of input.topics) {
    const offset = input.committed.get(topic) ?? -1n;
    if (offset >= 0n) positions.set(topic, offset);
    else missing.push(topic);
  }
  if (missing.length === 0) return { ok: true, positions };
  const refuse = input.policy === 'none' || (input.policy === 'safe' && input.hasState);
  if (refuse) {
    const why =
      input.policy === 'none'
        ? 'OFFSET_RESET=none refuses every missing offset'
        : `${input.stateDescription}, so starting from the earliest offset would replay what was already applied`;
    return {
      ok: false,
      stops: missing.map((topic) => ({
        topic,
        partition: input.partition,
        code: 'offsets_missing',
        reason: `no committed offset for ${topic}-${input.partition}: ${why}`,
        action: `set the position explicitly: ${resetCommand(input.group, topic, input.partition, '<offset>|earliest|latest')} (see docs/operations.md, "task refuses to start")`,
      })),
    };
  }
  for (const topic of missing) positions.set(topic, input.earliest.get(topic) ?? 0n);
  return { ok: true, positions };
}

/** The stop of a partition whose position is outside [logStart, logEnd]. */
export function outOfRangeStop(
  group: 'processor' | 'sink',
  topic: string,
  partition: number,
  position: bigint,
  logStart: bigint | undefined,
  logEnd: bigint | undefined,
): PartitionStop {
  const range =
    logStart === undefined || logEnd === undefined
      ? 'the log range could not be listed'
      : `the log holds offsets ${logStart} to ${logEnd}`;
  const before = logStart !== undefined && position < logStart;
  const cause = before
    ? 'records were deleted (retention or deleteRecords) before they were processed'
    : 'the position is past the log end (topic recreated or truncated)';
  return {
    topic,
    partition,
    code: 'offset_out_of_range',
    reason: `position ${position} of ${topic}-${partition} is out of range: ${range}; ${cause}`,
    action: `stop every member of the group, then ${resetCommand(group, topic, partition, before ? 'earliest' : '<offset>|latest')} and start again (see docs/operations.md, "partition stopped: offset out of range")`,
  };
}
