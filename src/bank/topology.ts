// Step 1 of a transfer's path (README-BANK.md): the bank as one topology on the engine.
//   commands source (transaction_initiated) ─┐
//   credits source (bankstream-credits) ─────┴─► bank processor (stores: accounts, balances, transfers)
//        ─► completed / failed / audit / dlq sinks, and the credits sink (legs back into the credits source).
// Read next: processor.ts (parse, prefetch, idempotency, dispatch), then transfer.ts (the two legs).
import { bytesSerde, Topology, TopologyError } from '../topology/topology.ts';
import type { Serde } from '../topology/types.ts';
import { SINKS } from './outcomes.ts';
import { type ExpiryStepBounds, type ExpiryStepResult, SegmentedKeyValueStore } from '../stores/segmented-store.ts';
import { DEFAULT_EXPIRY_BOUNDS } from './expiry.ts';
import { BankProcessor, type BankProcessorOptions, legBytesSerde } from './processor.ts';
import { BANK_STORES, defaultDedupSegmentIntervalMs } from './stores.ts';

export interface BankTopics {
  /** Commands (transaction_initiated). */
  input: string;
  /** The repartition topic carrying transfer legs (bankstream-credits). */
  credits: string;
  completed: string;
  failed: string;
  audit: string;
  dlq: string;
}

export interface BankTopologyOptions {
  topics: BankTopics;
  /** How long a decided transferId is remembered for deduplication (DESIGN: 7 days by default). */
  dedupRetentionMs: number;
  /** Width of one transfers-store segment in ms (default: half the retention, as Kafka Streams). */
  dedupSegmentIntervalMs?: number;
  /** How often a bounded dedup expiry step runs, in wall-clock ms (default 100 ms: about once per commit). */
  punctuateIntervalMs?: number;
  /** Bounds of one expiry step (expiry.ts DEFAULT_EXPIRY_BOUNDS). */
  expiry?: Partial<ExpiryStepBounds>;
  /** Told the outcome of every expiry step (metrics, benchmarks). */
  onExpiryStep?: (result: ExpiryStepResult, partition: number) => void;
  /** Told the outcome of every hold expiry step (benchmarks). */
  onHoldExpiryStep?: BankProcessorOptions['onHoldExpiryStep'];
  /** The clock restore compares segments with (default Date.now). */
  restoreClock?: () => number;
  /**
   * A record whose processing throws deterministically: 'dead-letter' (default) sends it to the DLQ and
   * goes on, 'fail' stops the instance (src/topology/processing-errors.ts).
   */
  processingExceptionHandler?: 'dead-letter' | 'fail';
}

export const BANK_PROCESSOR = 'bank';
export const DEFAULT_PUNCTUATE_INTERVAL_MS = 100;

/** Outcome, audit and leg values: plain JSON objects of strings (money is already a decimal string). */
const jsonValueSerde: Serde<unknown> = {
  serialize: (value) => Buffer.from(JSON.stringify(value), 'utf8'),
  deserialize: (bytes) => JSON.parse(bytes.toString('utf8')) as unknown,
};

export function buildBankTopology(options: BankTopologyOptions): Topology {
  const { topics } = options;
  const retentionMs = positive('dedupRetentionMs', options.dedupRetentionMs);
  const segmentIntervalMs = positive(
    'dedupSegmentIntervalMs',
    options.dedupSegmentIntervalMs ?? defaultDedupSegmentIntervalMs(retentionMs),
  );
  const expiry = { ...DEFAULT_EXPIRY_BOUNDS, ...options.expiry };
  for (const [name, value] of Object.entries(expiry)) positive(`expiry.${name}`, value);
  const processorOptions: BankProcessorOptions = {
    dedupRetentionMs: retentionMs,
    dedupSegmentIntervalMs: segmentIntervalMs,
    punctuateIntervalMs: positive('punctuateIntervalMs', options.punctuateIntervalMs ?? DEFAULT_PUNCTUATE_INTERVAL_MS),
    expiry,
    ...(options.onExpiryStep === undefined ? {} : { onExpiryStep: options.onExpiryStep }),
    ...(options.onHoldExpiryStep === undefined ? {} : { onHoldExpiryStep: options.onHoldExpiryStep }),
  };
  const restoreClock = options.restoreClock ?? Date.now;
  // Restore skips records of segments already expired: a restored store starts bounded.
  const skipOnRestore = (key: string): boolean =>
    SegmentedKeyValueStore.expiredKey(key, restoreClock(), retentionMs, segmentIntervalMs);
  const topology = new Topology()
    // Keys stay raw bytes so that a dead letter carries the original key exactly.
    .addSource('commands', { topics: [topics.input], keySerde: bytesSerde, valueSerde: bytesSerde })
    .addSource('credits', { topics: [topics.credits], keySerde: bytesSerde, valueSerde: legBytesSerde })
    .addRepartitionTopic(topics.credits, { deadLetterTopic: topics.dlq })
    .addProcessor(BANK_PROCESSOR, () => new BankProcessor(processorOptions), 'commands', 'credits');
  for (const name of BANK_STORES)
    topology.addStateStore(name === 'transfers' ? { name, skipOnRestore } : { name }, BANK_PROCESSOR);
  return topology
    .addSink(SINKS.completed, { topic: topics.completed, valueSerde: jsonValueSerde }, BANK_PROCESSOR)
    .addSink(SINKS.failed, { topic: topics.failed, valueSerde: jsonValueSerde }, BANK_PROCESSOR)
    .addSink(SINKS.audit, { topic: topics.audit, valueSerde: jsonValueSerde }, BANK_PROCESSOR)
    .addSink(SINKS.credits, { topic: topics.credits, valueSerde: jsonValueSerde }, BANK_PROCESSOR)
    .addSink(SINKS.dlq, { topic: topics.dlq, keySerde: bytesSerde, valueSerde: bytesSerde }, BANK_PROCESSOR)
    .setProcessingExceptionHandler(
      options.processingExceptionHandler === 'fail'
        ? { response: 'fail' }
        : { response: 'dead-letter', topic: topics.dlq },
    )
    .validate();
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw new TopologyError(`bank topology: ${name} must be a positive integer of ms or entries, got ${value}`);
  return value;
}
