// bankstream's Kafka layer: build clients only through these factories and helpers.
export * from './clients.ts';
export * from './partitioner.ts';
export * from './producer.ts';
export * from './read-committed.ts';
export * from './txn-offsets.ts';
export * from './security.ts';
