// Where a command's path starts: the bank as one topology on the engine.
//   commands source (transaction_initiated) ─┐
//   credits source (bankstream-credits) ─────┴─► bank processor (stores: accounts, balances, transfers)
//        ─► completed / failed / audit / dlq sinks, and the credits sink (legs back into the credits source).
// Read next: processor.ts (parse, prefetch, idempotency, dispatch), then transfer.ts (the two legs).
import { bytesSerde, Topology, TopologyError } from '../topology/topology.ts';
import { type Serde } from '../topology/types.ts';
import { SINKS } from './outcomes.ts';
import { BankProcessor, legBytesSerde } from './processor.ts';
import { BANK_STORES } from './stores.ts';

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
  /** How often the dedup expiry punctuator runs, in wall-clock ms (default 60 s). */
  punctuateIntervalMs?: number;
  /** Deletions per expiry run at most (default 10,000). */
  expiryDeletionsMax?: number;
  /** Entries scanned per expiry run at most (default 100,000). */
  expiryScannedMax?: number;
  /**
   * A record whose processing throws deterministically: 'dead-letter' (default) sends it to the DLQ and
   * goes on, 'fail' stops the instance (src/topology/processing-errors.ts).
   */
  processingExceptionHandler?: 'dead-letter' | 'fail';
}

export const BANK_PROCESSOR = 'bank';
export const DEFAULT_PUNCTUATE_INTERVAL_MS = 60_000;

/** Outcome, audit and leg values: plain JSON objects of strings (money is already a decimal string). */
const jsonValueSerde: Serde<unknown> = {
  serialize: (value) => Buffer.from(JSON.stringify(value), 'utf8'),
  deserialize: (bytes) => JSON.parse(bytes.toString('utf8')) as unknown,
};

export function buildBankTopology(options: BankTopologyOptions): Topology {
  const { topics } = options;
  const processorOptions = {
    dedupRetentionMs: positive('dedupRetentionMs', options.dedupRetentionMs),
    punctuateIntervalMs: positive('punctuateIntervalMs', options.punctuateIntervalMs ?? DEFAULT_PUNCTUATE_INTERVAL_MS),
    expiryDeletionsMax: positive('expiryDeletionsMax', options.expiryDeletionsMax ?? 10_000),
    expiryScannedMax: positive('expiryScannedMax', options.expiryScannedMax ?? 100_000),
  };
  const topology = new Topology()
    // Keys stay raw bytes so that a dead letter carries the original key exactly.
    .addSource('commands', { topics: [topics.input], keySerde: bytesSerde, valueSerde: bytesSerde })
    .addSource('credits', { topics: [topics.credits], keySerde: bytesSerde, valueSerde: legBytesSerde })
    .addRepartitionTopic(topics.credits, { deadLetterTopic: topics.dlq })
    .addProcessor(BANK_PROCESSOR, () => new BankProcessor(processorOptions), 'commands', 'credits');
  for (const name of BANK_STORES) topology.addStateStore({ name }, BANK_PROCESSOR);
  return topology
    .addSink(SINKS.completed, { topic: topics.completed, valueSerde: jsonValueSerde }, BANK_PROCESSOR)
    .addSink(SINKS.failed, { topic: topics.failed, valueSerde: jsonValueSerde }, BANK_PROCESSOR)
    .addSink(SINKS.audit, { topic: topics.audit, valueSerde: jsonValueSerde }, BANK_PROCESSOR)
    .addSink(SINKS.credits, { topic: topics.credits, valueSerde: jsonValueSerde }, BANK_PROCESSOR)
    .addSink(SINKS.dlq, { topic: topics.dlq, keySerde: bytesSerde, valueSerde: bytesSerde }, BANK_PROCESSOR)
    .setProcessingExceptionHandler(options.processingExceptionHandler === 'fail' ? { response: 'fail' } : { response: 'dead-letter', topic: topics.dlq })
    .validate();
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new TopologyError(`bank topology: ${name} must be a positive integer of ms or entries, got ${value}`);
  return value;
}
