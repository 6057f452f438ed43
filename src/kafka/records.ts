// The shape of a record as read from a partition: what the Fetcher returns and a topology's task is fed.
// It lives here, at the bottom, so the Kafka readers need nothing from the rooms above them.

/** Record headers: names to raw bytes. */
export type Headers = Readonly<Record<string, Buffer>>;

/** A raw record read from a topic partition. */
export interface InputRecord {
  topic: string;
  partition: number;
  offset: bigint;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: number;
  headers: Headers;
}
