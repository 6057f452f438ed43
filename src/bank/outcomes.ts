// Everything the bank writes out: outcomes (transaction_completed / transaction_failed, key = transferId),
// audit events, internal legs and dead letters. The shapes are the public wire contract of DESIGN.md.
import type { Headers, ProcessorContext, Rec } from '../topology/types.ts';
import { record } from '../topology/record.ts';
import type { TransferFields } from './commands.ts';
import type { TransferFailureCode } from './failure-codes.ts';
import { type Leg, legKey, legValue } from './legs.ts';

export type AuditEventName =
  | 'account_opened'
  | 'account_closed'
  | 'account_command_rejected'
  | 'transfer_completed'
  | 'transfer_failed'
  | 'transfer_refunded';

/** An audit_log value without `at` (Outputs stamps it). Extra fields only where a consumer needs them. */
export interface AuditEvent {
  event: AuditEventName;
  accountId?: string;
  transferId?: string;
  code?: string;
  reason?: string;
  /** account_opened only: the Postgres sink builds the account row from these. */
  ownerId?: string;
  currency?: string;
  overdraftLimit?: string;
}

/** Names of the processor's child sinks (topology.ts wires them to topics). */
export const SINKS = {
  completed: 'completed-sink',
  failed: 'failed-sink',
  audit: 'audit-sink',
  dlq: 'dlq-sink',
  credits: 'credits-sink',
} as const;

/**
 * Writes the processor's outputs through its context. `begin` is called once per record: every
 * output of a record carries that record's timestamp (as Kafka Streams forwards), and the decision
 * time `completedAt`/`at` is read from the task's clock once.
 */
export class Outputs {
  readonly #context: ProcessorContext;
  #key: Buffer | null = null;
  #value: Buffer | null = null;
  #headers: Headers = {};
  #timestampMs = 0;
  #nowMs = 0;
  #nowIso = '';

  constructor(context: ProcessorContext) {
    this.#context = context;
  }

  /** Starts a record: its original key and value bytes are kept for a dead letter. */
  begin(key: Buffer | null, value: Buffer | null, timestampMs: number, headers: Headers): void {
    this.#key = key;
    this.#value = value;
    this.#headers = headers;
    this.#timestampMs = timestampMs;
    const nowMs = this.#context.currentSystemTimeMs();
    // Records of a batch mostly share a millisecond: format the decision time only when it moves.
    if (nowMs !== this.#nowMs || this.#nowIso === '') this.#nowIso = new Date(nowMs).toISOString();
    this.#nowMs = nowMs;
  }

  /** The task's wall-clock time when the current record began: the decision time. */
  get nowMs(): number {
    return this.#nowMs;
  }

  get nowIso(): string {
    return this.#nowIso;
  }

  /** `transaction_completed`, and its audit twin. */
  completed(fields: TransferFields): void {
    const value = outcomeValue(fields);
    value['completedAt'] = this.#nowIso;
    this.#forward(SINKS.completed, fields.transferId, value);
    this.audit({
      event: 'transfer_completed',
      accountId: fields.accountId ?? fields.from,
      transferId: fields.transferId,
    });
  }

  /** `transaction_failed`, and its audit twin. */
  failed(fields: TransferFields, code: TransferFailureCode, reason: string): void {
    const value = outcomeValue(fields);
    value['completedAt'] = this.#nowIso;
    value['code'] = code;
    value['reason'] = reason;
    this.#forward(SINKS.failed, fields.transferId, value);
    this.audit({
      event: 'transfer_failed',
      accountId: fields.accountId ?? fields.from,
      transferId: fields.transferId,
      code,
    });
  }

  /**
   * An outcome built elsewhere (holds: their values have more fields than a transfer's), stamped with
   * `completedAt` and followed by its audit twin, as completed() and failed() do.
   */
  outcome(kind: 'completed' | 'failed', value: Record<string, string>, accountId: string | undefined): void {
    const stamped = { ...value, completedAt: this.#nowIso };
    const transferId = value['transferId']!;
    this.#forward(kind === 'completed' ? SINKS.completed : SINKS.failed, transferId, stamped);
    const audit: AuditEvent = { event: kind === 'completed' ? 'transfer_completed' : 'transfer_failed', transferId };
    if (accountId !== undefined) audit.accountId = accountId;
    if (value['code'] !== undefined) audit.code = value['code'];
    this.audit(audit);
  }

  /** A leg of a hold (hold-legs.ts) onto the credits topic. */
  holdLeg(key: string, value: Record<string, string>): void {
    this.#forward(SINKS.credits, key, value);
  }

  audit(event: AuditEvent): void {
    this.#forward(SINKS.audit, event.accountId ?? event.transferId ?? null, { ...event, at: this.#nowIso });
  }

  leg(leg: Leg): void {
    this.#forward(SINKS.credits, legKey(leg), legValue(leg));
  }

  /** The current record's original key and value bytes, untouched, with the error and the source position in headers. */
  deadLetter(error: string): void {
    const source = this.#context.recordMetadata();
    const dlqHeaders: Record<string, Buffer> = { ...this.#headers, 'bankstream.error': Buffer.from(error, 'utf8') };
    if (source) {
      dlqHeaders['bankstream.source.topic'] = Buffer.from(source.topic, 'utf8');
      dlqHeaders['bankstream.source.partition'] = Buffer.from(String(source.partition), 'utf8');
      dlqHeaders['bankstream.source.offset'] = Buffer.from(source.offset.toString(), 'utf8');
    }
    this.#context.forward(record(this.#key, this.#value, this.#timestampMs, dlqHeaders) as Rec, SINKS.dlq);
  }

  #forward(sink: string, key: string | null, value: object): void {
    this.#context.forward(record(key, value, this.#timestampMs) as Rec, sink);
  }
}

/** The outcome fields in one stable order, absent fields left out. */
function outcomeValue(fields: TransferFields): Record<string, string> {
  const value: Record<string, string> = { transferId: fields.transferId, type: fields.type };
  if (fields.accountId !== undefined) value['accountId'] = fields.accountId;
  if (fields.from !== undefined) value['from'] = fields.from;
  if (fields.to !== undefined) value['to'] = fields.to;
  if (fields.amount !== undefined) value['amount'] = fields.amount;
  if (fields.currency !== undefined) value['currency'] = fields.currency;
  if (fields.reference !== undefined) value['reference'] = fields.reference;
  value['requestedAt'] = fields.requestedAt;
  return value;
}
