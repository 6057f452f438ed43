// The processing exception handler (Kafka Streams' KIP-1033, with KIP-1034's dead-letter queue): what the
// engine does with a record whose processing throws. Generic: it knows records, nodes and stores, no bank.
//
// A record throws deterministically when it throws again when retried alone, from the same state: its
// partial effects (store writes, forwarded records) are undone after each attempt, so the retry sees
// exactly what the first attempt saw and nothing of the failed attempt survives. Then, by the handler:
// - 'dead-letter': the record's original key, value and headers go to the dead-letter topic, with the error
//   and the source position in headers; the record's offset advances in the same transaction (exactly-once
//   holds: both commit or neither), and processing continues with the next record;
// - 'fail': the engine stops with a ProcessingError naming the record (for users who prefer stopping).
// A punctuator that throws is undone the same way and that run skipped (no record to dead-letter).
// Infrastructure errors (a store that failed closed or is corrupted) are not the record's fault: they
// propagate, the transaction aborts and the work is retried, as before.
import { InvalidChangelogOffsetError, StoreCorruptedError, StoreFailedError } from '../stores/types.ts';
import type { Headers } from './types.ts';

export type ProcessingExceptionHandler =
  | { readonly response: 'dead-letter'; readonly topic: string }
  | { readonly response: 'fail' };

/**
 * Where the failure happened: the source's deserializer, a processor's prefetch, process (a processor or a
 * sink), or a punctuator (no record: nothing is dead-lettered, that run is skipped).
 */
export type ProcessingPhase = 'deserialize' | 'prefetch' | 'process' | 'punctuate';

/** Handed to the engine's listener (log line, metric) for every record the handler sent to the dead-letter topic. */
export interface ProcessingErrorInfo {
  readonly node: string;
  readonly phase: ProcessingPhase;
  /** The record's source topic; null for a punctuation (as Kafka Streams' ErrorHandlerContext). */
  readonly topic: string | null;
  /** The record's partition; a punctuation's task partition. */
  readonly partition: number;
  /** The record's offset; -1 for a punctuation. */
  readonly offset: bigint;
  readonly error: unknown;
}

/** Header names of a dead letter, shared with the bank's own dead letters (README-BANK "Bad input"). */
export const DLQ_HEADERS = {
  error: 'bankstream.error',
  node: 'bankstream.error.node',
  sourceTopic: 'bankstream.source.topic',
  sourcePartition: 'bankstream.source.partition',
  sourceOffset: 'bankstream.source.offset',
} as const;

/** The error text in a dead letter's header is bounded: a message may quote a 1 MB key. */
const ERROR_HEADER_CHARS_MAX = 1000;

/** Thrown with the 'fail' response: the engine stops, naming the record and the node. */
export class ProcessingError extends Error {
  readonly code = 'processing_failed';
  readonly node: string;
  readonly phase: ProcessingPhase;
  readonly topic: string | null;
  readonly partition: number;
  readonly offset: bigint;

  constructor(info: Omit<ProcessingErrorInfo, 'error'>, cause: unknown) {
    const where = info.topic === null ? `task ${info.partition}` : `${info.topic}/${info.partition}@${info.offset}`;
    super(`processing failed in ${info.phase} of node ${info.node} at ${where}: ${errorText(cause)}`, { cause });
    this.name = 'ProcessingError';
    this.node = info.node;
    this.phase = info.phase;
    this.topic = info.topic;
    this.partition = info.partition;
    this.offset = info.offset;
  }
}

/**
 * Errors that are not the record's fault, so retrying it alone proves nothing: a store that failed closed
 * (its flush failed), a corrupted store, a changelog offset going backwards. An error may also mark itself
 * with `infrastructure: true`.
 */
export function isInfrastructureError(error: unknown): boolean {
  if (
    error instanceof StoreFailedError ||
    error instanceof StoreCorruptedError ||
    error instanceof InvalidChangelogOffsetError
  )
    return true;
  return typeof error === 'object' && error !== null && (error as { infrastructure?: unknown }).infrastructure === true;
}

/** The original headers plus the error, the node and the source position (UTF-8 strings). */
export function deadLetterHeaders(
  original: Headers,
  info: Omit<ProcessingErrorInfo, 'error'>,
  error: unknown,
): Headers {
  // A spread copies an own "__proto__" header as a plain property; the names below overwrite same-named originals.
  return {
    ...original,
    [DLQ_HEADERS.error]: Buffer.from(
      `processing exception in ${info.phase} of node ${info.node}: ${errorText(error)}`,
      'utf8',
    ),
    [DLQ_HEADERS.node]: Buffer.from(info.node, 'utf8'),
    [DLQ_HEADERS.sourceTopic]: Buffer.from(info.topic ?? '', 'utf8'),
    [DLQ_HEADERS.sourcePartition]: Buffer.from(String(info.partition), 'utf8'),
    [DLQ_HEADERS.sourceOffset]: Buffer.from(info.offset.toString(), 'utf8'),
  };
}

/** "Name: message", bounded and well-formed (a message may quote a lone surrogate or a huge key). */
export function errorText(error: unknown): string {
  let text: string;
  try {
    text = error instanceof Error ? `${error.name}: ${error.message}` : `thrown value ${String(error)}`;
  } catch {
    // A getter or toString that throws must not turn the handler itself into a poison.
    text = 'an error that cannot be printed';
  }
  return text.slice(0, ERROR_HEADER_CHARS_MAX).toWellFormed();
}

/** The store key a processor named in prefetch cannot be stored (the same rule as every store's put). */
export class UnstorableKeyError extends Error {
  readonly code = 'store_key_unstorable';
  constructor(store: string, key: unknown) {
    super(
      `prefetch of store ${store}: key ${typeof key === 'string' ? `of ${key.length} characters is not well-formed UTF-16` : `is a ${typeof key}, not a string`}`,
    );
    this.name = 'UnstorableKeyError';
  }
}
