// One sink batch: the rows read from Kafka since the last write, the offsets they reach, and the
// single Postgres transaction that writes them. Rows, balance changes and offsets commit together,
// so after a crash the sink resumes exactly where the database says, and a record read twice
// (a stale instance after a rebalance, a replay) changes nothing the second time.
import type pg from 'pg';
import type { Config } from '../config/config.ts';
import { type CopyValue, copyRows } from './copy.ts';
import { UPSERT_HOLDS } from './hold-rows.ts';
import { connectPg } from './pg-connection.ts';
import {
  type AuditRow,
  IDEMPOTENCY_CONFLICT,
  type OutcomeRow,
  type RejectRow,
  type SinkRow,
  storableText,
} from './records.ts';

export interface BatchCounts {
  outcomes: number;
  audits: number;
  rejects: number;
}

export interface BatchWriteResult {
  /** Rows that were new: transactions, conflicts and audit rows inserted (not skipped as already there). */
  rowsInserted: number;
  rejectsInserted: number;
}

export class SinkBatch {
  readonly outcomes: OutcomeRow[] = [];
  readonly audits: AuditRow[] = [];
  readonly rejects: RejectRow[] = [];
  /** Next offset per "topic\0partition", only ever moving forward. */
  readonly nextOffsets = new Map<string, { topic: string; partition: number; offset: bigint }>();
  /** When the first offset moved into this batch: the batch is due sinkBatchMs after it. */
  firstAdvanceAtMs: number | null = null;

  get rows(): number {
    return this.outcomes.length + this.audits.length + this.rejects.length;
  }

  /** True when there is anything to write: rows, or offsets moved past control/aborted records. */
  get isEmpty(): boolean {
    return this.nextOffsets.size === 0;
  }

  add(row: SinkRow): void {
    if (row.kind === 'outcome') this.outcomes.push(row.row);
    else if (row.kind === 'audit') this.audits.push(row.row);
    else this.rejects.push(row.row);
  }

  advance(topic: string, partition: number, offset: bigint, nowMs: number): void {
    this.firstAdvanceAtMs ??= nowMs;
    const key = `${topic}\u0000${partition}`;
    const current = this.nextOffsets.get(key);
    if (!current || current.offset < offset) this.nextOffsets.set(key, { topic, partition, offset });
  }

  counts(): BatchCounts {
    return { outcomes: this.outcomes.length, audits: this.audits.length, rejects: this.rejects.length };
  }
}

/** Staging tables live per connection and empty themselves at every commit. */
export const STAGING_DDL = `
CREATE TEMP TABLE IF NOT EXISTS sink_stage_outcomes (
  seq integer NOT NULL, transfer_id text NOT NULL, type text, account_id text, from_account text,
  to_account text, amount numeric, currency text, status text NOT NULL, failure_code text,
  reason text, reference text, requested_at timestamptz, completed_at timestamptz NOT NULL,
  source_topic text NOT NULL, source_partition integer NOT NULL, source_offset bigint NOT NULL,
  payload jsonb NOT NULL, hold_id text, hold_status text, held_amount numeric, expires_at timestamptz
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS sink_stage_audit (
  seq integer NOT NULL, event text NOT NULL, account_id text, transfer_id text, code text,
  at timestamptz NOT NULL, owner_id text, currency text, overdraft_limit numeric,
  source_topic text NOT NULL, source_partition integer NOT NULL, source_offset bigint NOT NULL,
  payload jsonb NOT NULL, fresh boolean NOT NULL DEFAULT false
) ON COMMIT DELETE ROWS;`;

/**
 * A connection to write batches on: the first read-write server of DATABASE_URL's host list, with this
 * session's staging table created. Never a read-only server: a standby would refuse every write anyway,
 * and a primary in read-only mode must not be mistaken for a place to write the read model.
 */
export async function connectForBatches(config: Config): Promise<pg.Client> {
  const db = await connectPg(config.databaseUrl, config.postgresTls, {
    target: 'read-write',
    client: {
      application_name: `${config.appId}-sink`,
      connectionTimeoutMillis: 5_000,
      statement_timeout: 60_000,
      keepAlive: true,
    },
  });
  try {
    await db.query(STAGING_DDL);
  } catch (error) {
    await db.end().catch(() => undefined);
    throw error;
  }
  return db;
}

const OUTCOME_COLUMNS = [
  'seq',
  'transfer_id',
  'type',
  'account_id',
  'from_account',
  'to_account',
  'amount',
  'currency',
  'status',
  'failure_code',
  'reason',
  'reference',
  'requested_at',
  'completed_at',
  'source_topic',
  'source_partition',
  'source_offset',
  'payload',
  'hold_id',
  'hold_status',
  'held_amount',
  'expires_at',
] as const;

const AUDIT_COLUMNS = [
  'seq',
  'event',
  'account_id',
  'transfer_id',
  'code',
  'at',
  'owner_id',
  'currency',
  'overdraft_limit',
  'source_topic',
  'source_partition',
  'source_offset',
  'payload',
] as const;

/**
 * Writes the batch in ONE transaction: the numbered steps below run in this order because the
 * balance and account steps only act on rows that step 2 and 4 actually inserted.
 */
export async function writeBatch(client: pg.ClientBase, groupId: string, batch: SinkBatch): Promise<BatchWriteResult> {
  await client.query('BEGIN');
  try {
    // 1. Stage the rows with COPY.
    await copyRows(client, 'sink_stage_outcomes', OUTCOME_COLUMNS, batch.outcomes.map(outcomeFields));
    await copyRows(client, 'sink_stage_audit', AUDIT_COLUMNS, batch.audits.map(auditFields));
    // 2. Outcomes: conflicts aside, then transactions with their net balance change per account.
    const conflicts = await client.query(INSERT_CONFLICTS, [IDEMPOTENCY_CONFLICT]);
    const transactions = await client.query<{ inserted: string }>(INSERT_TRANSACTIONS_AND_BALANCES, [
      IDEMPOTENCY_CONFLICT,
    ]);
    // 2b. The holds rows those outcomes describe (idempotent, in any order: hold-rows.ts).
    await client.query(UPSERT_HOLDS);
    // 3. Audit rows, marking in staging the ones that were new.
    const audits = await client.query(INSERT_AUDIT_LOGS);
    // 4. Account rows from the new account_opened / account_closed events.
    await client.query(UPSERT_OPENED_ACCOUNTS);
    await client.query(UPSERT_CLOSED_ACCOUNTS);
    // 5. Rejects and offsets.
    const rejects = await insertRejects(client, batch.rejects);
    await saveOffsets(client, groupId, batch);
    await client.query('COMMIT');
    const rowsInserted =
      (conflicts.rowCount ?? 0) + Number(transactions.rows[0]?.inserted ?? 0) + (audits.rowCount ?? 0);
    return { rowsInserted, rejectsInserted: rejects };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

function outcomeFields(row: OutcomeRow, seq: number): CopyValue[] {
  const { source } = row;
  return [
    seq,
    row.transferId,
    row.type,
    row.accountId,
    row.fromAccount,
    row.toAccount,
    row.amount,
    row.currency,
    row.status,
    row.failureCode,
    row.reason,
    row.reference,
    row.requestedAt,
    row.completedAt,
    source.topic,
    source.partition,
    source.offset,
    row.payload,
    row.hold?.holdId ?? null,
    row.hold?.status ?? null,
    row.hold?.heldAmount ?? null,
    row.hold?.expiresAt ?? null,
  ];
}

function auditFields(row: AuditRow, seq: number): CopyValue[] {
  const { source } = row;
  return [
    seq,
    row.event,
    row.accountId,
    row.transferId,
    row.code,
    row.at,
    row.ownerId,
    row.currency,
    row.overdraftLimit,
    source.topic,
    source.partition,
    source.offset,
    row.payload,
  ];
}

const INSERT_CONFLICTS = `
INSERT INTO transfer_conflicts (transfer_id, reason, requested_at, completed_at, source_topic, source_partition, source_offset, payload)
SELECT transfer_id, reason, requested_at, completed_at, source_topic, source_partition, source_offset, payload
  FROM sink_stage_outcomes WHERE failure_code = $1 ORDER BY seq
ON CONFLICT DO NOTHING`;

// The balance change comes from the RETURNING rows only, so a record already in the table (a
// replay: the same source topic, partition and offset, the only unique key besides the generated id)
// moves no money, while two decisions under one transferId (another account, or the same one after
// the dedup retention) are two records, two rows and two balance changes, as in the ledger. Accounts are upserted in id order so concurrent sink instances lock
// rows in the same order; an account not opened yet in Postgres starts as a pending row.
const INSERT_TRANSACTIONS_AND_BALANCES = `
WITH inserted AS (
  INSERT INTO transactions (transfer_id, type, account_id, from_account, to_account, amount, currency, status,
                            failure_code, reason, reference, requested_at, completed_at, source_topic,
                            source_partition, source_offset, payload)
  SELECT transfer_id, type, account_id, from_account, to_account, amount, currency, status, failure_code, reason,
         reference, requested_at, completed_at, source_topic, source_partition, source_offset, payload
    FROM sink_stage_outcomes WHERE failure_code IS DISTINCT FROM $1 ORDER BY seq
  ON CONFLICT DO NOTHING
  RETURNING type, account_id, from_account, to_account, amount, status
), deltas AS (
  SELECT account_id AS id, amount AS delta FROM inserted WHERE status = 'COMPLETED' AND type = 'deposit'
  UNION ALL SELECT account_id, -amount FROM inserted WHERE status = 'COMPLETED' AND type = 'withdrawal'
  UNION ALL SELECT from_account, -amount FROM inserted WHERE status = 'COMPLETED' AND type = 'transfer'
  UNION ALL SELECT to_account, amount FROM inserted WHERE status = 'COMPLETED' AND type = 'transfer'
  UNION ALL SELECT from_account, -amount FROM inserted WHERE status = 'COMPLETED' AND type = 'post_hold'
  UNION ALL SELECT to_account, amount FROM inserted WHERE status = 'COMPLETED' AND type = 'post_hold'
), applied AS (
  INSERT INTO accounts AS a (id, balance, updated_at)
  SELECT id, sum(delta), now() FROM deltas GROUP BY id ORDER BY id
  ON CONFLICT (id) DO UPDATE SET balance = a.balance + excluded.balance, updated_at = excluded.updated_at
  RETURNING 1
)
SELECT (SELECT count(*) FROM inserted) AS inserted, (SELECT count(*) FROM applied) AS accounts`;

const INSERT_AUDIT_LOGS = `
WITH inserted AS (
  INSERT INTO audit_logs (event, account_id, transfer_id, code, at, payload, source_topic, source_partition, source_offset)
  SELECT event, account_id, transfer_id, code, at, payload, source_topic, source_partition, source_offset
    FROM sink_stage_audit ORDER BY seq
  ON CONFLICT DO NOTHING
  RETURNING source_topic, source_partition, source_offset
)
UPDATE sink_stage_audit s SET fresh = true FROM inserted i
 WHERE s.source_topic = i.source_topic AND s.source_partition = i.source_partition AND s.source_offset = i.source_offset`;

// Fills a pending row (created by an earlier balance change) or creates the account; an account
// already opened is left alone. The balance starts at zero with the currency's scale ("0.00").
const UPSERT_OPENED_ACCOUNTS = `
INSERT INTO accounts AS a (id, owner_id, currency, overdraft_limit, balance, opened_at, updated_at)
SELECT DISTINCT ON (account_id) account_id, owner_id, currency, overdraft_limit, round(0::numeric, scale(overdraft_limit)), at, now()
  FROM sink_stage_audit WHERE fresh AND event = 'account_opened' ORDER BY account_id, seq
ON CONFLICT (id) DO UPDATE SET owner_id = excluded.owner_id, currency = excluded.currency,
  overdraft_limit = excluded.overdraft_limit, opened_at = excluded.opened_at, updated_at = excluded.updated_at
  WHERE a.opened_at IS NULL`;

// The balance is left as the sum of applied outcomes: the processor closes only at zero, and the
// outcomes that brought it there may be sunk after this event (they are on another topic).
const UPSERT_CLOSED_ACCOUNTS = `
INSERT INTO accounts AS a (id, status, closed_at, updated_at)
SELECT DISTINCT ON (account_id) account_id, 'closed', at, now()
  FROM sink_stage_audit WHERE fresh AND event = 'account_closed' ORDER BY account_id, seq
ON CONFLICT (id) DO UPDATE SET status = 'closed', closed_at = excluded.closed_at, updated_at = excluded.updated_at
  WHERE a.status = 'open'`;

async function insertRejects(client: pg.ClientBase, rejects: RejectRow[]): Promise<number> {
  if (rejects.length === 0) return 0;
  const result = await client.query(
    `INSERT INTO sink_rejects (source_topic, source_partition, source_offset, record_key, record_value, error)
     SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::bytea[], $5::bytea[], $6::text[])
     ON CONFLICT DO NOTHING`,
    [
      rejects.map((r) => r.source.topic),
      rejects.map((r) => r.source.partition),
      rejects.map((r) => r.source.offset.toString()),
      rejects.map((r) => r.key),
      rejects.map((r) => r.value),
      rejects.map((r) => r.error),
    ],
  );
  return result.rowCount ?? 0;
}

// GREATEST: an instance that lost the partition in a rebalance may still commit an older batch.
async function saveOffsets(client: pg.ClientBase, groupId: string, batch: SinkBatch): Promise<void> {
  const offsets = [...batch.nextOffsets.values()].sort(
    (a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition,
  );
  await client.query(
    `INSERT INTO sink_offsets (group_id, topic, partition, next_offset, updated_at)
     SELECT $1, topic, partition, next_offset, now()
       FROM unnest($2::text[], $3::integer[], $4::bigint[]) AS o(topic, partition, next_offset)
     ON CONFLICT (group_id, topic, partition)
     DO UPDATE SET next_offset = GREATEST(sink_offsets.next_offset, excluded.next_offset), updated_at = excluded.updated_at`,
    [groupId, offsets.map((o) => o.topic), offsets.map((o) => o.partition), offsets.map((o) => o.offset.toString())],
  );
}

/** The unresolved rejects of some topics: how many, and the oldest one to name in alarms. */
export interface UnresolvedRejects {
  count: number;
  first: {
    topic: string;
    partition: number;
    offset: string;
    key: string | null;
    error: string;
    rejectedAt: string;
  } | null;
}

const KEY_CHARS_SHOWN_MAX = 120;

/** Rejects of the topics that no operator has resolved (resolved_at NULL), whichever sink wrote them. */
export async function loadUnresolvedRejects(client: pg.ClientBase, topics: string[]): Promise<UnresolvedRejects> {
  const { rows } = await client.query<{
    n: string;
    source_topic: string | null;
    source_partition: number | null;
    source_offset: string | null;
    record_key: Buffer | null;
    error: string | null;
    rejected_at: Date | null;
  }>(
    `SELECT (SELECT count(*) FROM sink_rejects WHERE resolved_at IS NULL AND source_topic = ANY($1::text[])) AS n,
            f.source_topic, f.source_partition, f.source_offset::text, f.record_key, f.error, f.rejected_at
       FROM (SELECT 1) one
       LEFT JOIN LATERAL (SELECT * FROM sink_rejects WHERE resolved_at IS NULL AND source_topic = ANY($1::text[])
                          ORDER BY rejected_at, id LIMIT 1) f ON true`,
    [topics],
  );
  const row = rows[0];
  const count = Number(row?.n ?? 0);
  if (!row || count === 0 || row.source_topic === null) return { count, first: null };
  const key =
    row.record_key === null ? null : storableText(row.record_key.toString('utf8')).slice(0, KEY_CHARS_SHOWN_MAX);
  return {
    count,
    first: {
      topic: row.source_topic,
      partition: row.source_partition ?? 0,
      offset: row.source_offset ?? '0',
      key,
      error: row.error ?? '',
      rejectedAt: row.rejected_at?.toISOString() ?? '',
    },
  };
}

/** Reads the stored next offsets of a group for some topics, keyed "topic\0partition". */
export async function loadOffsets(
  client: pg.ClientBase,
  groupId: string,
  topics: string[],
): Promise<Map<string, bigint>> {
  const { rows } = await client.query<{ topic: string; partition: number; next_offset: string }>(
    'SELECT topic, partition, next_offset FROM sink_offsets WHERE group_id = $1 AND topic = ANY($2::text[])',
    [groupId, topics],
  );
  return new Map(rows.map((row) => [`${row.topic}\u0000${row.partition}`, BigInt(row.next_offset)]));
}
