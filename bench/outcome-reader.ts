// Tails topics read_committed through src/kafka's Fetcher (the Java read_committed rule), so the
// bench only ever sees what a downstream consumer would: committed outcomes, never aborted ones.
import { Consumer } from '@platformatic/kafka';
import { Fetcher, type FetchedRecord } from '../src/kafka/fetcher.ts';

export interface TailPosition {
  topic: string;
  partition: number;
  offset: bigint;
}

export type RecordHandler = (record: FetchedRecord, seenAtMs: number) => void;

/** How long fetch rounds may fail in a row (fresh topics electing leaders) before the reader gives up. */
const READER_FAILING_MAX_MS = 15_000;

/** Between fetch rounds that return nothing the loop waits in the broker (maxWaitMs), never in a sleep. */
const FETCH_MAX_WAIT_MS = 10;

export class OutcomeReader {
  readonly #consumer: Consumer;
  readonly #fetcher: Fetcher;
  readonly #positions: TailPosition[];
  #loop: Promise<void> | undefined;
  #stopped = false;
  #error: unknown;
  /** Records seen so far and when the last fetch round ended. */
  records = 0;
  lastRoundMs = 0;

  private constructor(consumer: Consumer, positions: TailPosition[]) {
    this.#consumer = consumer;
    this.#positions = positions;
    this.#fetcher = new Fetcher(consumer, {
      maxWaitMs: FETCH_MAX_WAIT_MS,
      minBytes: 1,
      maxBytes: 16 * 1024 * 1024,
      partitionMaxBytes: 4 * 1024 * 1024,
    });
  }

  /** A reader positioned at the start of each topic, or at its current end (last stable offset). */
  static async open(brokers: string[], topics: string[], from: 'earliest' | 'latest'): Promise<OutcomeReader> {
    const consumer = new Consumer({
      clientId: 'bankstream-bench-reader',
      groupId: `bankstream-bench-reader-${process.pid}`,
      bootstrapBrokers: brokers,
      timeout: 30_000,
      retries: 3,
    });
    const positions: TailPosition[] = [];
    const ends = from === 'latest' ? await consumer.listOffsets({ topics, isolationLevel: 1 }) : undefined;
    const metadata = await consumer.metadata({ topics });
    for (const topic of topics) {
      const count = metadata.topics.get(topic)?.partitionsCount ?? 0;
      for (let partition = 0; partition < count; partition++)
        positions.push({ topic, partition, offset: ends?.get(topic)?.[partition] ?? 0n });
    }
    return new OutcomeReader(consumer, positions);
  }

  /** Starts tailing in the background; `onRecord` runs for every committed record, in partition order. */
  start(onRecord: RecordHandler): void {
    this.#loop = (async () => {
      let failingSinceMs: number | undefined;
      while (!this.#stopped) {
        let fetched: Awaited<ReturnType<Fetcher['fetch']>>;
        try {
          fetched = await this.#fetcher.fetch(this.#positions);
          failingSinceMs = undefined;
        } catch (error) {
          // Topics created moments ago answer NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_ID or a leader epoch
          // error until their leaders settle: the Fetcher refreshes its metadata on the next round. A
          // reader that died on the first such answer failed the scale phase now and then.
          failingSinceMs ??= Date.now();
          if (Date.now() - failingSinceMs > READER_FAILING_MAX_MS) throw error;
          await new Promise((resolve) => setTimeout(resolve, 200));
          continue;
        }
        const now = Date.now();
        for (const part of fetched) {
          const position = this.#positions.find((p) => p.topic === part.topic && p.partition === part.partition)!;
          for (const record of part.records) onRecord(record, now);
          this.records += part.records.length;
          if (part.nextOffset > position.offset) position.offset = part.nextOffset;
        }
        this.lastRoundMs = now;
      }
    })().catch((error: unknown) => {
      this.#error = error;
    });
  }

  /** Throws the loop's error, if it died. */
  check(): void {
    if (this.#error) throw this.#error;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    await this.#consumer.close(true).catch(() => undefined);
    this.check();
  }
}
