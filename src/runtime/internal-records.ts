// The engine's side of authenticated internal records (src/kafka/record-mac.ts holds the MAC format,
// record-auth.ts the policies): what the engine (task executor, task manager) calls when it emits a
// repartition record, fetches one, writes a changelog record or restores one, and what it reports. Kept
// in one place so the processing path only calls into it.
import type { Logger } from 'pino';
import type { ClusterKeys } from '../config/cluster-key.ts';
import type { OutputRecord } from '../topology/task-graph.ts';
import type { InternalRecordsStatus, RejectedRecord } from '../streams/status.ts';
import type { Topology } from '../topology/topology.ts';
import type { FetchedRecord } from '../kafka/fetcher.ts';
import {
  hasMacHeaders,
  producerTaskOf,
  type RecordRejection,
  signChangelogEntry,
  signRepartitionRecord,
  verifyRepartitionRecord,
  withoutMacHeaders,
} from '../kafka/record-mac.ts';
import { type ChangelogCheck, changelogVerifier, type RecordAuthOptions } from './record-auth.ts';

export type { InternalRecordsStatus, RejectedRecord } from '../streams/status.ts';

export interface InternalRecordsOptions {
  keys: ClusterKeys;
  topology: Topology;
  log: Logger;
  auth?: RecordAuthOptions;
  /** false only for the bench's A/B measure of the MACs' cost: nothing signed, nothing checked. Never from configuration. */
  enabled?: boolean;
}

export class InternalRecords {
  readonly #keys: ClusterKeys;
  readonly #topology: Topology;
  readonly #log: Logger;
  readonly #auth: RecordAuthOptions;
  readonly #enabled: boolean;
  readonly #repartition: ReadonlySet<string>;
  readonly #changelogCheck: ChangelogCheck;
  #rejected = 0;
  #lastRejected: RejectedRecord | undefined;
  #unsignedAccepted = 0;
  #previousKeyAccepted = 0;
  /** Error logs of refused records in the current window, and those left out (a flood must not flood the log). */
  #loggedInWindow = 0;
  #unloggedInWindow = 0;
  #windowStartMs = 0;

  constructor(options: InternalRecordsOptions) {
    this.#keys = options.keys;
    this.#topology = options.topology;
    this.#log = options.log;
    this.#auth = options.auth ?? {};
    this.#enabled = options.enabled ?? true;
    this.#repartition = new Set(options.topology.repartitionTopics());
    this.#changelogCheck = changelogVerifier(this.#keys, this.#auth, this.#log);
    if (this.#auth.changelogAcceptUnsigned)
      this.#log.warn(
        'CHANGELOG_ACCEPT_UNSIGNED is on: changelog records without a MAC are restored; turn it off once every store has been written by this version',
      );
    if (this.#auth.legsAcceptUnsigned)
      this.#log.warn(
        "LEGS_ACCEPT_UNSIGNED is on: repartition records without a MAC are applied; turn it off once the previous version's records are consumed",
      );
  }

  /** Dead-letter topics the engine writes to (checked at start-up with the other topics). */
  deadLetterTopics(): string[] {
    const out = new Set<string>();
    for (const topic of this.#repartition) {
      const dlq = this.#topology.repartitionDeadLetterTopic(topic);
      if (dlq) out.add(dlq);
    }
    return [...out];
  }

  /** An output of task `producerTask`: signed when it goes to a repartition topic. */
  sign(output: OutputRecord, producerTask: number): OutputRecord {
    if (!this.#enabled || !this.#repartition.has(output.topic)) return output;
    return { ...output, headers: signRepartitionRecord(this.#keys, output, producerTask) };
  }

  /**
   * Fetched records of one source partition: the ones to process (MAC headers removed: processors never
   * see them) and, for each refused one, its dead letter. Records of other topics pass untouched.
   */
  authenticate(
    topic: string,
    records: FetchedRecord[],
    partitionsOf: (topic: string) => number,
  ): { accepted: FetchedRecord[]; deadLetters: OutputRecord[] } {
    if (!this.#enabled || !this.#repartition.has(topic)) return { accepted: records, deadLetters: [] };
    const accepted: FetchedRecord[] = [];
    const deadLetters: OutputRecord[] = [];
    const acceptUnsigned = this.#auth.legsAcceptUnsigned ?? false;
    for (const record of records) {
      const check = verifyRepartitionRecord(this.#keys, record, acceptUnsigned);
      if (check.ok) {
        if (check.unsigned) this.#unsignedAccepted++;
        if (check.previousKey) this.#previousKeyAccepted++;
        accepted.push(
          hasMacHeaders(record.headers) ? { ...record, headers: withoutMacHeaders(record.headers) } : record,
        );
        continue;
      }
      this.#reject(record, check.reason);
      const dlq = this.#topology.repartitionDeadLetterTopic(topic);
      if (dlq) deadLetters.push(deadLetter(dlq, record.partition % partitionsOf(dlq), record, check.reason));
    }
    return { accepted, deadLetters };
  }

  /** The MAC headers of one changelog record, or undefined when disabled (bench). */
  changelogHeaders(
    store: string,
    partition: number,
    key: Buffer,
    value: Buffer | null,
  ): Map<Buffer, Buffer> | undefined {
    return this.#enabled ? signChangelogEntry(this.#keys, store, partition, key, value) : undefined;
  }

  /** The check restore and standbys apply to every changelog record, or undefined when disabled (bench). */
  changelogCheck(): ChangelogCheck | undefined {
    return this.#enabled ? this.#changelogCheck : undefined;
  }

  status(): InternalRecordsStatus {
    return {
      rejectedRecords: this.#rejected,
      lastRejected: this.#lastRejected,
      unsignedAccepted: this.#unsignedAccepted,
      previousKeyAccepted: this.#previousKeyAccepted,
      acceptingUnsigned: Boolean(this.#auth.legsAcceptUnsigned || this.#auth.changelogAcceptUnsigned),
    };
  }

  #reject(record: FetchedRecord, reason: RecordRejection): void {
    this.#rejected++;
    const claimedTask = producerTaskOf(record.headers);
    this.#lastRejected = {
      topic: record.topic,
      partition: record.partition,
      offset: String(record.offset),
      reason,
      claimedTask,
      atMs: Date.now(),
    };
    const now = Date.now();
    if (now - this.#windowStartMs >= REJECTION_LOG_WINDOW_MS) {
      if (this.#unloggedInWindow > 0)
        this.#log.error(
          { unlogged: this.#unloggedInWindow },
          'more internal records did not verify (not logged one by one; see the DLQ)',
        );
      this.#windowStartMs = now;
      this.#loggedInWindow = 0;
      this.#unloggedInWindow = 0;
    }
    if (this.#loggedInWindow >= REJECTION_LOGS_PER_WINDOW_MAX) {
      this.#unloggedInWindow++;
      return;
    }
    this.#loggedInWindow++;
    // An error, not a warning: nobody but this application writes here, so this is an attack or a leaked credential.
    this.#log.error(
      { topic: record.topic, partition: record.partition, offset: String(record.offset), reason, claimedTask },
      'internal record does not verify (not signed with CLUSTER_SECRET): not applied, sent to the dead-letter topic',
    );
  }
}

const REJECTION_LOG_WINDOW_MS = 10_000;
const REJECTION_LOGS_PER_WINDOW_MAX = 20;

function deadLetter(topic: string, partition: number, record: FetchedRecord, reason: RecordRejection): OutputRecord {
  const text = (value: string) => Buffer.from(value, 'utf8');
  return {
    topic,
    // The DLQ's partition does not matter: the source position is in the headers.
    partition,
    key: record.key,
    value: record.value,
    timestamp: record.timestamp,
    headers: {
      ...record.headers,
      'bankstream.error': text(
        `internal record does not verify (${reason}): not written by this application with CLUSTER_SECRET; not applied`,
      ),
      'bankstream.source.topic': text(record.topic),
      'bankstream.source.partition': text(String(record.partition)),
      'bankstream.source.offset': text(record.offset.toString()),
    },
  };
}
