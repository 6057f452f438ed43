// The Java consumer's read_committed rule, kept per partition across fetch responses.
// @platformatic/kafka 2.12 keeps one aborted range per producer id per response and delivers records
// whose abort marker lies in a later response; both leak aborted data in exactly the crash scenarios
// this project exists for. The rule implemented here (Java's Fetcher/CompletedFetch):
//   1. Sort the response's aborted transactions by first offset.
//   2. Walking batches in offset order, every aborted transaction whose first offset is ≤ the batch's
//      last offset marks its producer id as "aborting".
//   3. A transactional batch of an aborting producer is skipped; that producer's ABORT control marker
//      ends the range. The aborting set survives across responses (the range may span fetches).
import { type KafkaRecord, type RecordsBatch } from '@platformatic/kafka';

export interface AbortedTransaction {
  producerId: bigint;
  firstOffset: bigint;
}

const IS_TRANSACTIONAL = 0x10;
const IS_CONTROL = 0x20;
const CONTROL_ABORT = 0;

export type RecordVisitor = (batch: RecordsBatch, record: KafkaRecord, offset: bigint) => void;

export class ReadCommittedFilter {
  readonly #aborting = new Set<bigint>();

  /**
   * Calls `visit` for each committed data record at or after `fromOffset`, in offset order, and
   * returns the offset after the last batch seen (control and aborted batches included).
   */
  filter(batches: RecordsBatch[], aborted: AbortedTransaction[], fromOffset: bigint, visit: RecordVisitor): bigint {
    const pending = [...aborted].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0));
    let next = fromOffset;
    for (const batch of batches) {
      const lastOffset = batch.firstOffset + BigInt(batch.lastOffsetDelta);
      while (pending.length > 0 && pending[0]!.firstOffset <= lastOffset) this.#aborting.add(pending.shift()!.producerId);
      if (lastOffset + 1n > next) next = lastOffset + 1n;
      if (batch.attributes & IS_CONTROL) {
        if (isAbortMarker(batch)) this.#aborting.delete(batch.producerId);
        continue;
      }
      if (batch.attributes & IS_TRANSACTIONAL && this.#aborting.has(batch.producerId)) continue;
      for (const record of batch.records) {
        const offset = batch.firstOffset + BigInt(record.offsetDelta);
        if (offset >= fromOffset) visit(batch, record, offset);
      }
    }
    return next;
  }
}

function isAbortMarker(batch: RecordsBatch): boolean {
  const key = batch.records[0]?.key;
  // Control record key: int16 version, int16 type (0 = ABORT, 1 = COMMIT).
  return !!key && key.length >= 4 && key.readInt16BE(2) === CONTROL_ABORT;
}
