// The console's dead-letter view (issue 24): the latest records of the dead-letter topic with their error
// headers (read_committed, from a tail started on the first console request, so that an instance whose
// console is never opened reads nothing), and the latest sink rejects from PostgreSQL.
import type { Logger } from 'pino';
import type pg from 'pg';
import type { Config } from '../../config/config.ts';
import type { FetchedRecord } from '../../kafka/fetcher.ts';
import { TopicTail } from '../../tails/topic-tail.ts';

export const DEAD_LETTERS_MAX = 50;

/** A record as the tail hands it over. */
type TailedRecord = FetchedRecord;
export const SINK_REJECTS_MAX = 20;
/** A key or value is shown as at most this many characters (UTF-8 text, or hex when it is not text). */
const PREVIEW_CHARS = 200;

export interface DeadLetter {
  topic: string;
  partition: number;
  offset: string;
  timestamp: string;
  key: string | null;
  value: string | null;
  /** Every header, as text (bankstream.error, bankstream.error.node, bankstream.source.* and the record's own). */
  headers: Record<string, string>;
}

export interface SinkReject {
  id: string;
  sourceTopic: string;
  sourcePartition: number;
  sourceOffset: string;
  error: string;
  rejectedAt: string;
  resolvedAt: string | null;
  resolution: string | null;
}

export class DeadLetterFeed {
  readonly #config: Config;
  readonly #logger: Logger;
  readonly #latest: DeadLetter[] = [];
  #tail: TopicTail | undefined;
  #closed = false;

  constructor(config: Config, logger: Logger) {
    this.#config = config;
    this.#logger = logger;
  }

  /** The latest dead letters, newest first; starts the tail on the first call. */
  latest(): { tailing: boolean; records: DeadLetter[] } {
    if (!this.#tail && !this.#closed) this.#startTail();
    return { tailing: this.#tail !== undefined, records: [...this.#latest].reverse() };
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#tail?.close();
  }

  #startTail(): void {
    const tail = new TopicTail({
      config: this.#config,
      logger: this.#logger,
      purpose: 'console-dlq',
      topics: [this.#config.topics.dlq],
      from: 'beginning',
      maxWaitMs: 500,
      onRecords: (records) => this.#add(records),
    });
    this.#tail = tail;
    tail.start().catch((error: unknown) => {
      this.#logger.warn({ err: error }, 'console: the dead-letter topic could not be tailed');
      this.#tail = undefined;
      this.#closed = true;
    });
  }

  #add(records: TailedRecord[]): void {
    for (const record of records) {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(record.headers)) headers[name] = preview(value) ?? '';
      this.#latest.push({
        topic: record.topic,
        partition: record.partition,
        offset: String(record.offset),
        timestamp: new Date(record.timestamp).toISOString(),
        key: preview(record.key),
        value: preview(record.value),
        headers,
      });
    }
    if (this.#latest.length > DEAD_LETTERS_MAX) this.#latest.splice(0, this.#latest.length - DEAD_LETTERS_MAX);
  }
}

/** Text when the bytes are printable UTF-8, else hex; cut at PREVIEW_CHARS. */
export function preview(bytes: Buffer | null | undefined): string | null {
  if (bytes === null || bytes === undefined) return null;
  const text = bytes.toString('utf8');
  const printable = !text.includes('\uFFFD') && !/[\u0000-\u0008\u000E-\u001F\u007F]/.test(text);
  const shown = printable ? text : `0x${bytes.subarray(0, PREVIEW_CHARS / 2).toString('hex')}`;
  return shown.length > PREVIEW_CHARS ? `${shown.slice(0, PREVIEW_CHARS)}…` : shown;
}

const REJECTS_SQL = `SELECT id, source_topic, source_partition, source_offset, error, rejected_at, resolved_at, resolution
  FROM sink_rejects ORDER BY id DESC LIMIT $1`;

/** The latest sink rejects, newest first. */
export async function latestSinkRejects(pool: Pick<pg.Pool, 'query'>): Promise<SinkReject[]> {
  const result = await pool.query<{
    id: string;
    source_topic: string;
    source_partition: number;
    source_offset: string;
    error: string;
    rejected_at: Date;
    resolved_at: Date | null;
    resolution: string | null;
  }>(REJECTS_SQL, [SINK_REJECTS_MAX]);
  return result.rows.map((row) => ({
    id: String(row.id),
    sourceTopic: row.source_topic,
    sourcePartition: row.source_partition,
    sourceOffset: String(row.source_offset),
    error: row.error,
    rejectedAt: row.rejected_at.toISOString(),
    resolvedAt: row.resolved_at ? row.resolved_at.toISOString() : null,
    resolution: row.resolution,
  }));
}
