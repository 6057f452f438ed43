// Turns one Kafka record of transaction_completed, transaction_failed or audit_log into the row the
// sink writes, or into a reject. Pure: no I/O. Every value that reaches Postgres is checked here
// first, because a value Postgres refuses would fail the whole batch again on every retry.
//
// The command edge accepts only what every later stage can carry, so the processor never emits a
// record this file rejects: a reject means a bug or a foreign writer on an outcome topic. It is kept
// in sink_rejects and raises an alarm until resolved (postgres-sink.ts), never a silent difference.
// One outcome record is one row, identified by its source position, whatever its transferId.

export interface SourcePosition {
  topic: string;
  partition: number;
  offset: bigint;
}

export interface SinkTopics {
  completed: string;
  failed: string;
  audit: string;
}

export interface SourceRecord extends SourcePosition {
  key: Buffer | null;
  value: Buffer | null;
}

export type OutcomeStatus = 'COMPLETED' | 'FAILED';

export interface OutcomeRow {
  transferId: string;
  type: string | null;
  accountId: string | null;
  fromAccount: string | null;
  toAccount: string | null;
  amount: string | null;
  currency: string | null;
  status: OutcomeStatus;
  failureCode: string | null;
  reason: string | null;
  reference: string | null;
  requestedAt: string | null;
  completedAt: string;
  source: SourcePosition;
  /** The value re-serialized, for the jsonb payload column. */
  payload: string;
  /** Completed hold outcomes only: what the holds table row of (fromAccount, holdId) learns. */
  hold?: HoldFacts;
}

/** README-BANK "Holds": a completed hold, post_hold, void_hold or hold_expiry outcome. */
export interface HoldFacts {
  holdId: string;
  status: 'pending' | 'posted' | 'voided' | 'expired';
  /** The held amount (a post's heldAmount; the amount of the others). */
  heldAmount: string;
  /** The deadline: a placed hold's expiresAt, an expiry's requestedAt; null for posts and voids. */
  expiresAt: string | null;
}

export interface AuditRow {
  event: string;
  accountId: string | null;
  transferId: string | null;
  code: string | null;
  at: string;
  /** account_opened only: what the accounts row is built from. */
  ownerId: string | null;
  currency: string | null;
  overdraftLimit: string | null;
  source: SourcePosition;
  payload: string;
}

export interface RejectRow {
  source: SourcePosition;
  key: Buffer | null;
  value: Buffer | null;
  error: string;
}

export type SinkRow =
  | { kind: 'outcome'; row: OutcomeRow }
  | { kind: 'audit'; row: AuditRow }
  | { kind: 'reject'; row: RejectRow };

export const IDEMPOTENCY_CONFLICT = 'idempotency_conflict';

const TRANSFER_TYPES: ReadonlySet<string> = new Set([
  'deposit',
  'withdrawal',
  'transfer',
  'hold',
  'post_hold',
  'void_hold',
  'hold_expiry',
]);
/** The types that name from and to (and no accountId). */
const TWO_ACCOUNT_TYPES: ReadonlySet<string> = new Set(['transfer', 'hold', 'post_hold', 'void_hold', 'hold_expiry']);
const HOLD_STATUS: Readonly<Record<string, HoldFacts['status']>> = {
  hold: 'pending',
  post_hold: 'posted',
  void_hold: 'voided',
  hold_expiry: 'expired',
};
// What the money_amount domain accepts: at most 34 integer digits and 4 fraction digits.
const STORABLE_DECIMAL = /^-?(0|[1-9][0-9]{0,33})(\.[0-9]{1,4})?$/;
const CURRENCY = /^[A-Z]{3}$/;
const CODE = /^[a-z][a-z0-9_]*$/;
// jsonb refuses deeper documents long before the JS parser does; nothing we emit nests beyond 2.
const JSON_DEPTH_MAX = 16;

type Json = Record<string, unknown>;

class RejectError extends Error {}

/** The row a record becomes; a reject (never a throw) when the record cannot be stored. */
export function parseRecord(topics: SinkTopics, record: SourceRecord): SinkRow {
  const source: SourcePosition = { topic: record.topic, partition: record.partition, offset: record.offset };
  try {
    const value = parseValue(record.value);
    const payload = JSON.stringify(value);
    if (record.topic === topics.completed) return { kind: 'outcome', row: completedRow(value, source, payload) };
    if (record.topic === topics.failed) return { kind: 'outcome', row: failedRow(value, source, payload) };
    if (record.topic === topics.audit) return { kind: 'audit', row: auditRow(value, source, payload) };
    throw new RejectError(`topic ${record.topic} is not one the sink reads`);
  } catch (error) {
    if (!(error instanceof RejectError)) throw error;
    return {
      kind: 'reject',
      row: { source, key: record.key, value: record.value, error: storableText(error.message) },
    };
  }
}

/**
 * Text Postgres can store: a NUL written as the escape `\u0000`, a lone surrogate as U+FFFD. For
 * reject messages, which may quote the bad input (JSON.parse's message does): a reject that
 * cannot be stored would fail its batch on every retry and stop the sink.
 */
export function storableText(text: string): string {
  return text.toWellFormed().replaceAll('\u0000', '\\u0000');
}

function parseValue(bytes: Buffer | null): Json {
  if (bytes === null || bytes.length === 0) throw new RejectError('the record has no value');
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new RejectError(`the value is not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new RejectError('the value is not a JSON object');
  checkStorable(value, 0);
  return value as Json;
}

/**
 * Postgres text and jsonb refuse NUL characters and lone surrogates; refuse them here instead, naming
 * where (`reference`, `meta.note`...), so the reject says which field the processor should never
 * have let through.
 */
function checkStorable(value: unknown, depth: number, path = ''): void {
  if (depth > JSON_DEPTH_MAX) throw new RejectError(`the value nests deeper than ${JSON_DEPTH_MAX} levels`);
  const where = path === '' ? 'the value' : path;
  if (typeof value === 'string') {
    if (value.includes('\u0000'))
      throw new RejectError(`${where} holds a NUL character, which Postgres text and jsonb cannot store`);
    if (!value.isWellFormed())
      throw new RejectError(`${where} holds a lone surrogate, which Postgres text and jsonb cannot store`);
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => checkStorable(item, depth + 1, `${where}[${index}]`));
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      const keyPath = path === '' ? printable(key) : `${path}.${printable(key)}`;
      checkStorable(key, depth + 1, `a key of ${where}`);
      checkStorable(item, depth + 1, keyPath);
    }
  }
}

/** A field name fit for an error message: the unstorable characters escaped, long names cut. */
function printable(key: string): string {
  const text = key.length > 40 ? `${key.slice(0, 40)}…` : key;
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(text) ? text : JSON.stringify(text);
}

function completedRow(value: Json, source: SourcePosition, payload: string): OutcomeRow {
  const type = requiredString(value, 'type');
  if (!TRANSFER_TYPES.has(type))
    throw new RejectError(`type must be a money command or hold type, got ${JSON.stringify(type)}`);
  const amount = requiredString(value, 'amount');
  if (!STORABLE_DECIMAL.test(amount) || amount.startsWith('-') || /^[0.]+$/.test(amount)) {
    throw new RejectError(
      `amount must be a positive decimal with at most 4 fraction digits, got ${JSON.stringify(amount)}`,
    );
  }
  const currency = requiredString(value, 'currency');
  if (!CURRENCY.test(currency))
    throw new RejectError(`currency must be three capital letters, got ${JSON.stringify(currency)}`);
  const isTransfer = TWO_ACCOUNT_TYPES.has(type);
  const row: OutcomeRow = {
    transferId: requiredString(value, 'transferId'),
    type,
    accountId: isTransfer ? null : requiredString(value, 'accountId'),
    fromAccount: isTransfer ? requiredString(value, 'from') : null,
    toAccount: isTransfer ? requiredString(value, 'to') : null,
    amount,
    currency,
    status: 'COMPLETED',
    failureCode: null,
    reason: null,
    reference: optionalString(value, 'reference'),
    requestedAt: requiredTimestamp(value, 'requestedAt'),
    completedAt: requiredTimestamp(value, 'completedAt'),
    source,
    payload,
  };
  const status = HOLD_STATUS[type];
  if (status !== undefined) row.hold = holdFacts(value, row, status);
  return row;
}

function holdFacts(value: Json, row: OutcomeRow, status: HoldFacts['status']): HoldFacts {
  const expected = status === 'pending' ? 'pending' : status;
  if (value['status'] !== expected)
    throw new RejectError(
      `status of a ${row.type} outcome must be ${expected}, got ${JSON.stringify(value['status'])}`,
    );
  const heldAmount = status === 'posted' ? requiredString(value, 'heldAmount') : row.amount!;
  if (!STORABLE_DECIMAL.test(heldAmount) || heldAmount.startsWith('-') || /^[0.]+$/.test(heldAmount))
    throw new RejectError(`heldAmount must be a positive decimal, got ${JSON.stringify(heldAmount)}`);
  const expiresAt =
    status === 'pending' ? requiredTimestamp(value, 'expiresAt') : status === 'expired' ? row.requestedAt : null;
  return {
    holdId: status === 'pending' ? row.transferId : requiredString(value, 'holdId'),
    status,
    heldAmount,
    expiresAt,
  };
}

/** A failure keeps whatever the command carried that is storable; the payload keeps the rest. */
function failedRow(value: Json, source: SourcePosition, payload: string): OutcomeRow {
  const code = requiredString(value, 'code');
  if (!CODE.test(code)) throw new RejectError(`code must be a lower_snake_case string, got ${JSON.stringify(code)}`);
  const type = optionalString(value, 'type');
  const amount = optionalString(value, 'amount');
  const currency = optionalString(value, 'currency');
  return {
    transferId: requiredString(value, 'transferId'),
    type: type !== null && TRANSFER_TYPES.has(type) ? type : null,
    accountId: optionalString(value, 'accountId'),
    fromAccount: optionalString(value, 'from'),
    toAccount: optionalString(value, 'to'),
    amount: amount !== null && STORABLE_DECIMAL.test(amount) ? amount : null,
    currency: currency !== null && CURRENCY.test(currency) ? currency : null,
    status: 'FAILED',
    failureCode: code,
    reason: optionalString(value, 'reason'),
    reference: optionalString(value, 'reference'),
    requestedAt: optionalTimestamp(value, 'requestedAt'),
    completedAt: requiredTimestamp(value, 'completedAt'),
    source,
    payload,
  };
}

function auditRow(value: Json, source: SourcePosition, payload: string): AuditRow {
  const event = requiredString(value, 'event');
  if (!CODE.test(event)) throw new RejectError(`event must be a lower_snake_case string, got ${JSON.stringify(event)}`);
  const row: AuditRow = {
    event,
    accountId: optionalString(value, 'accountId'),
    transferId: optionalString(value, 'transferId'),
    code: optionalString(value, 'code'),
    at: requiredTimestamp(value, 'at'),
    ownerId: null,
    currency: null,
    overdraftLimit: null,
    source,
    payload,
  };
  if (event === 'account_opened') return openedRow(value, row);
  if (event === 'account_closed') requiredString(value, 'accountId');
  return row;
}

function openedRow(value: Json, row: AuditRow): AuditRow {
  const currency = requiredString(value, 'currency');
  if (!CURRENCY.test(currency))
    throw new RejectError(`currency must be three capital letters, got ${JSON.stringify(currency)}`);
  const overdraftLimit = optionalString(value, 'overdraftLimit') ?? '0';
  if (!STORABLE_DECIMAL.test(overdraftLimit) || overdraftLimit.startsWith('-')) {
    throw new RejectError(
      `overdraftLimit must be a non-negative decimal with at most 4 fraction digits, got ${JSON.stringify(overdraftLimit)}`,
    );
  }
  return {
    ...row,
    accountId: requiredString(value, 'accountId'),
    ownerId: requiredString(value, 'ownerId'),
    currency,
    overdraftLimit,
  };
}

function requiredString(value: Json, field: string): string {
  const text = value[field];
  if (typeof text !== 'string' || text.length === 0) throw new RejectError(`${field} must be a non-empty string`);
  return text;
}

function optionalString(value: Json, field: string): string | null {
  const text = value[field];
  return typeof text === 'string' && text.length > 0 ? text : null;
}

/** An ISO-8601 instant, normalized to UTC milliseconds so Postgres always accepts it. */
function requiredTimestamp(value: Json, field: string): string {
  const text = optionalTimestamp(value, field);
  if (text === null) throw new RejectError(`${field} must be an ISO-8601 timestamp`);
  return text;
}

function optionalTimestamp(value: Json, field: string): string | null {
  const text = value[field];
  if (typeof text !== 'string' || !/^\d{4}-\d{2}-\d{2}T/.test(text)) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}
