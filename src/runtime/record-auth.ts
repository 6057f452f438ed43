// What the engine does with an internal record that does not verify (the MAC format is
// src/kafka/record-mac.ts): the operator's upgrade and incident switches, and the changelog check that
// restore and standbys apply to every record they build a store from.
import type { Logger } from 'pino';
import type { ClusterKeys } from '../config/cluster-key.ts';
import type { FetchedRecord } from '../kafka/fetcher.ts';
import { type RecordRejection, recordCoordinate, verifyChangelogRecord } from '../kafka/record-mac.ts';
import { FatalStreamsError } from './errors.ts';

/** The upgrade and incident switches (config RecordAuthConfig). */
export interface RecordAuthOptions {
  changelogAcceptUnsigned?: boolean;
  legsAcceptUnsigned?: boolean;
  changelogSkipRecords?: ReadonlySet<string>;
}

/** A changelog record that does not verify: the store is not built from it, the restore stops. */
export class UnauthenticatedChangelogRecordError extends FatalStreamsError {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  constructor(topic: string, partition: number, offset: bigint, store: string, reason: RecordRejection) {
    const at = recordCoordinate(topic, partition, offset);
    super(
      'changelog_record_unauthenticated',
      `changelog record ${at} of store ${store} does not verify (${reason}): it was not written by this application with ` +
        'this CLUSTER_SECRET, and the store is not restored from it. Inspect it (and find who could write the topic); if it is ' +
        `forged, restart with CHANGELOG_SKIP_RECORDS=${at} to restore without it, and keep that setting until a newer ` +
        "value of the record's key has been written and compaction has removed the forged one " +
        '(docs/operations.md, "A changelog record does not verify")',
    );
    this.name = 'UnauthenticatedChangelogRecordError';
    this.topic = topic;
    this.partition = partition;
    this.offset = offset;
  }
}

/**
 * What to do with a changelog record: apply it, its MAC verified ('authenticated': the bytes are exactly
 * what an engine holding the cluster secret wrote); apply it without a MAC ('unsigned', only with
 * CHANGELOG_ACCEPT_UNSIGNED: nothing is known of its bytes); or leave it out ('skip', the operator's list).
 */
export type ChangelogVerdict = 'authenticated' | 'unsigned' | 'skip';

/** Checks the changelog records restore and standbys apply; throws for one that does not verify. */
export type ChangelogCheck = (store: string, record: FetchedRecord) => ChangelogVerdict;

export function changelogVerifier(keys: ClusterKeys, options: RecordAuthOptions, log: Logger): ChangelogCheck {
  const skip = options.changelogSkipRecords ?? new Set<string>();
  const acceptUnsigned = options.changelogAcceptUnsigned ?? false;
  return (store, record) => {
    if (skip.size > 0 && skip.has(recordCoordinate(record.topic, record.partition, record.offset))) {
      log.warn(
        { topic: record.topic, partition: record.partition, offset: String(record.offset), store },
        'changelog record skipped (CHANGELOG_SKIP_RECORDS)',
      );
      return 'skip';
    }
    const check = verifyChangelogRecord(keys, store, record, acceptUnsigned);
    if (!check.ok)
      throw new UnauthenticatedChangelogRecordError(record.topic, record.partition, record.offset, store, check.reason);
    return check.unsigned ? 'unsigned' : 'authenticated';
  };
}
