// Reads of the Postgres read model (written by the sink): a transfer's decisions, an account's history with
// keyset pagination, and account owners. The read model holds one row per outcome record (migration 0003):
// a transferId is unique per acted-on account only, and even there it is new again after the dedup
// retention, so a lookup by transferId may find several decisions. Outcomes are returned as the sink stored them (`payload`, the outcome
// record exactly as emitted) plus `status`, so the API shows the same document as the Kafka outcome.
// The history may be read from a streaming replica (DATABASE_READ_URL, lag rule in read-replica.ts);
// every query goes through one circuit breaker (circuit-breaker.ts), so a database that is away costs
// an immediate 503 + Retry-After instead of a connection timeout per request.
import type pg from 'pg';
import type { Logger } from 'pino';
import { daysInMonth } from '../bank/input-rules.ts';
import type { Config } from '../config/config.ts';
import { FailoverPool, isConnectionFailure } from '../sinks/pg-connection.ts';
import { BREAKER_STATE_VALUES, type BreakerState, CircuitBreaker, CircuitOpenError } from './circuit-breaker.ts';
import { ApiError, invalidParameter, unavailable } from '../problems/errors.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { REPLICA_LAG_SQL, type ReplicaLag, chooseReadSource, replicaLagOf } from './read-replica.ts';

export type TransferDocument = Record<string, unknown>;

export interface HistoryPage {
  items: TransferDocument[];
  /** Opaque; pass as ?cursor= to get the next (older) page; null on the last page. */
  nextCursor: string | null;
}

interface TransferRow {
  payload: Record<string, unknown>;
  status: 'COMPLETED' | 'FAILED';
  cursor_at: string;
  transfer_id: string;
  id: string;
}

/** One decision found under a transferId: the account that decided it (null for a nameless malformed failure) and its document. */
export interface TransferDecision {
  actedAccount: string | null;
  document: TransferDocument;
}

/** Decisions returned by one lookup at most (newest first); reuse beyond this is not listed. */
export const TRANSFER_DECISIONS_MAX = 20;

// The three partial history indexes each serve one branch; UNION (not UNION ALL) drops the same row
// matched twice (a failed same_account transfer has from = to). (completed_at, transfer_id, id) is a
// total order: id breaks the tie between two decisions under one transferId.
const HISTORY_SQL = `
WITH page AS (
  (SELECT id FROM transactions WHERE account_id = $1 AND (completed_at, transfer_id, id) < ($2::timestamptz, $3, $5::bigint)
   ORDER BY completed_at DESC, transfer_id DESC, id DESC LIMIT $4)
  UNION
  (SELECT id FROM transactions WHERE from_account = $1 AND (completed_at, transfer_id, id) < ($2::timestamptz, $3, $5::bigint)
   ORDER BY completed_at DESC, transfer_id DESC, id DESC LIMIT $4)
  UNION
  (SELECT id FROM transactions WHERE to_account = $1 AND (completed_at, transfer_id, id) < ($2::timestamptz, $3, $5::bigint)
   ORDER BY completed_at DESC, transfer_id DESC, id DESC LIMIT $4)
)
SELECT t.payload, t.status, t.transfer_id, t.id::text AS id,
       to_char(t.completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at
FROM page JOIN transactions t USING (id)
ORDER BY t.completed_at DESC, t.transfer_id DESC, t.id DESC
LIMIT $4`;

// Newest first: the latest decision is the one the processor's dedup remembers.
const TRANSFER_SQL = `
SELECT payload, status, transfer_id, id::text AS id, '' AS cursor_at, acted_account
  FROM transactions WHERE transfer_id = $1 AND ($2::text IS NULL OR acted_account = $2)
 ORDER BY completed_at DESC, id DESC LIMIT $3`;

// Above every transactions.id (the first page), and below every one: a cursor made before migration 0003
// ([at, transferId], when a transferId was unique) resumes after every row of that (completed_at,
// transferId), as it did then.
const ROW_ID_MAX = '9223372036854775807';
const ROW_ID_BELOW_ALL = '0';

// Sorts after every real timestamp: the first page starts "before infinity".
const FIRST_PAGE: Cursor = { at: 'infinity', transferId: '', rowId: ROW_ID_MAX };
const CURSOR_CHARS_MAX = 600;

/** Where a history page was read, and how far behind that server was (0 = the primary, or current). */
export interface ReadFreshness {
  source: 'primary' | 'replica';
  /** Replay lag of the server read, in ms; null when unknown (the primary read after a replica fallback says 0). */
  lagMs: number | null;
}

// The replica's lag is asked at most this often; between asks every read uses the last answer.
const LAG_CHECK_INTERVAL_MS = 1_000;

export class ReadModel {
  readonly #primary: FailoverPool;
  readonly #replica: FailoverPool | undefined;
  readonly #breaker: CircuitBreaker;
  readonly #config: Config;
  readonly #log: Logger;
  #lag: { atMs: number; value: Promise<ReplicaLag | 'unreachable'> } | undefined;
  #lastLagMs: number | null = null;
  #rejected: { inc: () => void } | undefined;

  constructor(config: Config, logger: Logger, metrics?: Metrics) {
    this.#config = config;
    this.#log = logger;
    const options = {
      application_name: `bankstream-api-${config.instanceId}`,
      max: 10,
      connectionTimeoutMillis: 3000,
      idleTimeoutMillis: 30_000,
      statement_timeout: 5000,
    };
    // An idle client losing its connection must not crash the process; the next query reconnects.
    const onError = (error: Error) => logger.warn({ err: error }, 'idle Postgres connection failed');
    this.#primary = new FailoverPool(config.databaseUrl, config.postgresTls, options, onError);
    const readUrl = config.database.readUrl;
    this.#replica = readUrl
      ? new FailoverPool(
          readUrl,
          config.postgresTls,
          { ...options, application_name: `bankstream-api-${config.instanceId}-read` },
          onError,
        )
      : undefined;
    this.#breaker = new CircuitBreaker({
      failuresMax: config.database.breakerFailures,
      openMs: config.database.breakerOpenMs,
      onStateChange: (from, to) => logger.warn({ from, to }, 'read model database circuit breaker changed state'),
    });
    if (metrics) this.#bindMetrics(metrics);
  }

  /** The primary's pool of the moment (for callers that need a pg.Pool, e.g. the users table). */
  get pool(): pg.Pool {
    return this.#primary.pool;
  }

  get breakerState(): BreakerState {
    return this.#breaker.state;
  }

  /**
   * The decisions recorded under a transferId, newest first (at most TRANSFER_DECISIONS_MAX); only
   * those of `actedAccount` (the command's account: `from`, or `accountId`) when given. Always from the
   * primary: a command's outcome lookup must not miss a decision a replica has not replayed yet.
   */
  async transfers(transferId: string, actedAccount?: string): Promise<TransferDecision[]> {
    const rows = await this.#query<TransferRow & { acted_account: string | null }>(this.#primary, TRANSFER_SQL, [
      transferId,
      actedAccount ?? null,
      TRANSFER_DECISIONS_MAX,
    ]);
    return rows.map((row) => ({ actedAccount: row.acted_account, document: documentOf(row) }));
  }

  /** A query on the primary through the circuit breaker (reads that must be fresh: holds.ts). */
  async primaryRows<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<R[]> {
    return this.#query<R>(this.#primary, text, values);
  }

  /** The latest decision of (actedAccount, transferId), the identity of a money command. */
  async transfer(transferId: string, actedAccount: string): Promise<TransferDocument | undefined> {
    return (await this.transfers(transferId, actedAccount))[0]?.document;
  }

  /** An account's history, from the read replica when one is configured and close enough (read-replica.ts). */
  async history(
    accountId: string,
    limit: number,
    cursor: string | undefined,
  ): Promise<HistoryPage & { read: ReadFreshness }> {
    const from = cursor === undefined ? FIRST_PAGE : decodeCursor(cursor);
    const { pool, read } = await this.#historySource();
    const rows = await this.#query<TransferRow>(pool, HISTORY_SQL, [
      accountId,
      from.at,
      from.transferId,
      limit + 1,
      from.rowId,
    ]);
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    const nextCursor = rows.length > limit && last ? encodeCursor(last.cursor_at, last.transfer_id, last.id) : null;
    return { items: items.map(documentOf), nextCursor, read };
  }

  /** Owners of the accounts as the sink saw them (accounts not sunk yet are absent); from the primary (access checks). */
  async owners(accountIds: string[]): Promise<Map<string, string | null>> {
    const rows = await this.#query<{ id: string; owner_id: string | null }>(
      this.#primary,
      'SELECT id, owner_id FROM accounts WHERE id = ANY($1::text[])',
      [accountIds],
    );
    return new Map(rows.map((r) => [r.id, r.owner_id]));
  }

  async close(): Promise<void> {
    await Promise.all([this.#primary.end(), this.#replica?.end()]);
  }

  async #historySource(): Promise<{ pool: FailoverPool; read: ReadFreshness }> {
    if (!this.#replica) return { pool: this.#primary, read: { source: 'primary', lagMs: 0 } };
    const decision = chooseReadSource(
      await this.#replicaLag(),
      this.#config.database.readReplicaLagMaxMs,
      this.#config.database.readReplicaLagPolicy,
    );
    if (decision.source === 'replica')
      return { pool: this.#replica, read: { source: 'replica', lagMs: decision.lagMs } };
    if (decision.source === 'unavailable')
      throw unavailable('database_unavailable', `${decision.reason}; READ_REPLICA_LAG_POLICY=unavailable`, 1);
    return { pool: this.#primary, read: { source: 'primary', lagMs: 0 } };
  }

  /** The replica's lag, asked at most every LAG_CHECK_INTERVAL_MS (concurrent reads share one ask). */
  #replicaLag(): Promise<ReplicaLag | 'unreachable'> {
    const nowMs = Date.now();
    const replica = this.#replica;
    if (!replica) return Promise.resolve('unreachable');
    if (this.#lag && nowMs - this.#lag.atMs < LAG_CHECK_INTERVAL_MS) return this.#lag.value;
    const value = replica.query<{ standby: boolean; lag_ms: string | null }>(REPLICA_LAG_SQL, []).then(
      (result) => {
        const lag = replicaLagOf(result.rows[0]);
        this.#lastLagMs = lag.lagMs;
        return lag;
      },
      (error: unknown) => {
        this.#log.warn({ err: error }, 'the read replica could not be asked for its lag');
        this.#lastLagMs = null;
        return 'unreachable' as const;
      },
    );
    this.#lag = { atMs: nowMs, value };
    return value;
  }

  async #query<R extends pg.QueryResultRow>(pool: FailoverPool, text: string, values: unknown[]): Promise<R[]> {
    try {
      // Only connection-level failures count: a refused query says nothing about the server's health.
      return (await this.#breaker.run(() => pool.query<R>(text, values), isConnectionFailure)).rows;
    } catch (error) {
      if (error instanceof ApiError) throw error;
      if (error instanceof CircuitOpenError) {
        this.#rejected?.inc();
        throw unavailable(
          'database_unavailable',
          'the read model database failed repeatedly; not asking again until the circuit breaker probes it',
          Math.ceil(error.retryAfterMs / 1000),
          error,
        );
      }
      throw unavailable('database_unavailable', 'the read model database could not be queried', 2, error);
    }
  }

  #bindMetrics(metrics: Metrics): void {
    metrics.gaugeOf(
      'bankstream_db_circuit_state',
      'Circuit breaker of the API database calls: 0 closed, 1 half-open, 2 open',
      () => BREAKER_STATE_VALUES[this.#breaker.state],
    );
    this.#rejected = metrics.counter({
      name: 'bankstream_db_circuit_rejected_total',
      help: 'API database calls refused at once by the open circuit breaker',
    });
    if (this.#replica)
      metrics.gaugeOf(
        'bankstream_read_replica_lag_ms',
        'Replay lag of the read replica at its last check (ms; -1 unknown or unreachable)',
        () => this.#lastLagMs ?? -1,
      );
  }
}

// jsonb stores keys in its own order; documents list them as the outcome records do.
const FIELD_ORDER = [
  'transferId',
  'type',
  'status',
  'code',
  'reason',
  'accountId',
  'from',
  'to',
  'amount',
  'currency',
  'reference',
  'requestedAt',
  'completedAt',
];

function documentOf(row: TransferRow): TransferDocument {
  const source: Record<string, unknown> = {
    ...row.payload,
    status: row.status === 'COMPLETED' ? 'completed' : 'failed',
  };
  const document: TransferDocument = {};
  for (const field of FIELD_ORDER) if (source[field] !== undefined) document[field] = source[field];
  for (const [field, value] of Object.entries(source)) if (!(field in document)) document[field] = value;
  return document;
}

interface Cursor {
  at: string;
  transferId: string;
  /** transactions.id of the last row returned, as a decimal string. */
  rowId: string;
}

export function encodeCursor(at: string, transferId: string, rowId: string): string {
  return Buffer.from(JSON.stringify([at, transferId, rowId]), 'utf8').toString('base64url');
}

/** Bound on a cursor's transfer id (ids are at most 256 characters; a cursor is at most 600 base64 characters anyway). */
const CURSOR_ID_CHARS_MAX = 256;
const CURSOR_AT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.\d{6}Z$/;

/**
 * A cursor this endpoint handed out (or an earlier version's two-part one), or a 400: every value
 * returned here is one Postgres accepts as ($2::timestamptz, $3 text, $4 bigint), so a crafted cursor
 * can never turn into a database error (a 503). Date.parse is not strict enough: it takes "2026-02-30"
 * and year 0, which Postgres refuses.
 */
export function decodeCursor(cursor: string): Cursor {
  const invalid = () => invalidParameter('query.cursor', 'is not a cursor returned by this endpoint');
  if (cursor.length > CURSOR_CHARS_MAX || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalid();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (!Array.isArray(parsed) || (parsed.length !== 2 && parsed.length !== 3)) throw invalid();
  const [at, transferId] = parsed as unknown[];
  const rowId = parsed.length === 3 ? (parsed[2] as unknown) : ROW_ID_BELOW_ALL;
  if (typeof rowId !== 'string' || !/^(0|[1-9][0-9]{0,18})$/.test(rowId) || BigInt(rowId) > BigInt(ROW_ID_MAX))
    throw invalid();
  if (typeof at !== 'string' || !isCursorTimestamp(at)) throw invalid();
  if (typeof transferId !== 'string' || !isCursorId(transferId)) throw invalid();
  return { at, transferId, rowId };
}

/** A real UTC instant in years 1 to 9999, written exactly as the history query writes cursors. */
function isCursorTimestamp(at: string): boolean {
  const match = CURSOR_AT.exec(at);
  if (!match) return false;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return false;
  return day <= daysInMonth(year, month);
}

/** Postgres text cannot hold NUL, and a lone surrogate would be stored as U+FFFD: neither is a real id. */
function isCursorId(id: string): boolean {
  return id.length <= CURSOR_ID_CHARS_MAX && id.isWellFormed() && !id.includes('\u0000');
}
