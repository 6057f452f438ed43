// Holds, the from task's side (README-BANK "Holds"): the task owning `from` decides every transition of
// a hold — placed (pending), posted, voided, expired — and answers it; legs carry the rest to `to`
// (hold-credit.ts). Everything here runs after the idempotency gate (hold-dispatch.ts).
import { hasFunds, isRefusal, usableAccount } from './accounts.ts';
import { type BankTask, recordFinal } from './decide.ts';
import type { HoldCommand, HoldFields, ResolveHold } from './hold-commands.ts';
import { type HoldLeg, holdLegKey, holdLegValue } from './hold-legs.ts';
import { expiryKey, type HoldRow, type HoldStore } from './hold-store.ts';
import { currencyDigits, formatMoney } from './money.ts';
import type { TransferFailureCode } from './failure-codes.ts';
import { dedupKey } from './stores.ts';

/** A bank task with its holds store. */
export interface HoldTask extends BankTask {
  readonly holds: HoldStore;
}

export function sendHoldLeg(task: HoldTask, leg: HoldLeg): void {
  task.out.holdLeg(holdLegKey(leg), holdLegValue(leg));
}

function money(amount: bigint | string, currency: string): string {
  return formatMoney(BigInt(amount), currencyDigits(currency)!);
}

/** Records the failure of a hold command of `from` and answers it. */
export function failHold(
  task: HoldTask,
  account: string,
  fingerprint: string,
  fields: HoldFields,
  code: TransferFailureCode,
  reason: string,
): void {
  recordFinal(task, account, fields['transferId']!, fingerprint, 'failed', code);
  task.out.outcome('failed', { ...fields, code, reason }, fields['from'] ?? account);
}

/** A hold's outcome fields, from its command or from its row (same order, so outcomes read alike). */
function holdFields(
  transferId: string,
  hold: Pick<HoldRow, 'from' | 'to' | 'currency' | 'reference' | 'requestedAt'> & { readonly amount: bigint | string },
): HoldFields {
  const fields: HoldFields = {
    transferId,
    type: 'hold',
    from: hold.from,
    to: hold.to,
    amount: money(hold.amount, hold.currency),
    currency: hold.currency,
  };
  if (hold.reference !== undefined) fields['reference'] = hold.reference;
  fields['requestedAt'] = hold.requestedAt;
  return fields;
}

/** `hold`: checks as a transfer, then reserves on `from`; `to` is checked here (same task) or by its task. */
export function placeHold(task: HoldTask, command: HoldCommand, toIsLocal: boolean): void {
  const { transferId: holdId, from, to, amount, currency, fingerprint } = command;
  const fields = holdFields(command.transferId, command);
  const existing = task.holds.hold(from, holdId);
  if (existing !== undefined) {
    // The id's dedup entry expired, its hold did not: still that hold. The same command again is silent.
    if (existing.fingerprint !== fingerprint) {
      const reason = `hold ${holdId} already exists (${existing.status}); that one stands`;
      task.out.outcome('failed', { ...fields, code: 'idempotency_conflict', reason }, from);
    }
    return;
  }
  const fail = (code: TransferFailureCode, reason: string): void =>
    failHold(task, from, fingerprint, fields, code, reason);
  if (from === to) {
    fail('same_account', `hold ${holdId} has the same from and to account ${from}`);
    return;
  }
  const source = usableAccount(task, from, currency);
  if (isRefusal(source)) {
    fail(source.code, source.reason);
    return;
  }
  const nowMs = task.out.nowMs;
  const expiresAtMs =
    'timeoutMs' in command.deadline ? nowMs + command.deadline.timeoutMs : command.deadline.expiresAtMs;
  if (expiresAtMs <= nowMs) {
    fail('hold_expired', `hold ${holdId} expires at ${new Date(expiresAtMs).toISOString()}, not after it is decided`);
    return;
  }
  if (!hasFunds(task, from, source, amount)) {
    fail('insufficient_funds', `account ${from} cannot cover the hold`);
    return;
  }
  const row: HoldRow = {
    fingerprint,
    from,
    to,
    amount: amount.toString(),
    currency,
    requestedAt: command.requestedAt,
    expiresAtMs,
    status: 'opening',
  };
  if (command.reference !== undefined) row.reference = command.reference;
  if (toIsLocal) {
    const target = usableAccount(task, to, currency);
    if (isRefusal(target)) {
      fail(target.code, target.reason);
      return;
    }
    task.stores.adjustPending(from, amount, 0n);
    task.stores.adjustPending(to, 0n, amount);
    task.holds.putMark(from, holdId, { to, amount: row.amount, status: 'pending' });
    openHold(task, holdId, row);
    return;
  }
  task.stores.adjustPending(from, amount, 0n);
  task.holds.putHold(holdId, row);
  // In flight (pinned in the dedup store) until the to task answers.
  task.stores.transfers.put(dedupKey(from, holdId), { fingerprint, status: 'in_flight', decidedAt: nowMs });
  sendHoldLeg(task, { leg: 'hold_credit', holdId, from, to, amount, currency });
}

/** Both sides hold the money: the hold is pending, its deadline indexed, its command answered. */
function openHold(task: HoldTask, holdId: string, opening: HoldRow): void {
  const row: HoldRow = { ...opening, status: 'pending' };
  task.holds.putHold(holdId, row);
  task.holds.index(row, holdId);
  recordFinal(task, row.from, holdId, row.fingerprint, 'completed');
  const value = { ...holdFields(holdId, row), status: 'pending', expiresAt: new Date(row.expiresAtMs).toISOString() };
  task.out.outcome('completed', value, row.from);
}

/** The from task's leg handlers: hold_accepted, hold_refused, hold_settle. */
export function onFromLeg(
  task: HoldTask,
  leg: Extract<HoldLeg, { leg: 'hold_accepted' | 'hold_refused' | 'hold_settle' }>,
): void {
  const row = task.holds.hold(leg.from, leg.holdId);
  const expected = leg.leg === 'hold_settle' ? 'posted' : 'opening';
  if (row === undefined || row.status !== expected || (leg.leg === 'hold_settle' && row.settling !== true)) {
    task.out.deadLetter(
      `${leg.leg} leg for hold ${leg.holdId} from ${leg.from} does not match its hold (${row?.status ?? 'unknown'})`,
    );
    return;
  }
  if (leg.leg === 'hold_accepted') openHold(task, leg.holdId, row);
  else if (leg.leg === 'hold_settle') {
    task.stores.adjust(leg.from, 0n, -BigInt(row.postedAmount!));
    const { settling: _settled, ...settled } = row;
    task.holds.putHold(leg.holdId, settled);
  } else {
    task.stores.adjustPending(leg.from, -BigInt(row.amount), 0n);
    task.holds.putHold(leg.holdId, { ...row, status: 'failed', resolvedAt: task.out.nowIso });
    task.holds.forgetLater('h', leg.from, leg.holdId, task.out.nowMs);
    failHold(task, leg.from, row.fingerprint, holdFields(leg.holdId, row), leg.code, leg.reason);
  }
}

/**
 * hold_expire (hold-expiry.ts asks, key from): the one place besides a late post or void where a hold
 * expires, so it happens exactly once whoever asks how often. A pending hold of that deadline, past it
 * by this task's clock, expires now; one not yet due stays (asked again later); anything else (resolved
 * meanwhile, the id used again, a copy of the leg) changes nothing but a leftover index entry.
 */
export function onExpireLeg(task: HoldTask, leg: Extract<HoldLeg, { leg: 'hold_expire' }>): void {
  const row = task.holds.hold(leg.from, leg.holdId);
  if (row?.status === 'pending' && row.expiresAtMs === leg.expiresAtMs) {
    if (row.expiresAtMs <= task.out.nowMs) expireHold(task, leg.holdId, row);
    return;
  }
  task.holds.remove(expiryKey(leg.expiresAtMs, leg.from, leg.holdId));
}

const RESOLVED_CODES: Record<string, TransferFailureCode> = {
  posted: 'hold_already_posted',
  voided: 'hold_already_voided',
  expired: 'hold_expired',
};

/** `post_hold` and `void_hold`: the hold resolves at most once, by the first of post, void and deadline. */
export function resolveHold(task: HoldTask, command: ResolveHold): void {
  const { transferId, holdId, from } = command;
  const fields: HoldFields = { transferId, type: command.type, holdId, from };
  if (command.amount !== undefined && command.currency !== undefined) {
    fields['amount'] = money(command.amount, command.currency);
    fields['currency'] = command.currency;
  }
  fields['requestedAt'] = command.requestedAt;
  const fail = (code: TransferFailureCode, reason: string): void =>
    failHold(task, from, command.fingerprint, fields, code, reason);
  const row = task.holds.hold(from, holdId);
  if (row === undefined || row.status === 'failed') {
    fail('hold_not_found', `account ${from} has no hold ${holdId}`);
    return;
  }
  if (row.status === 'opening') {
    fail('hold_not_open', `hold ${holdId} waits for account ${row.to} to accept it`);
    return;
  }
  if (row.status === 'pending' && task.out.nowMs >= row.expiresAtMs) {
    // Past its deadline before the punctuator came by: it expires now, whatever the order of events.
    expireHold(task, holdId, row);
    fail('hold_expired', `hold ${holdId} expired at ${new Date(row.expiresAtMs).toISOString()}`);
    return;
  }
  const resolved = RESOLVED_CODES[row.status];
  if (resolved !== undefined) {
    fail(resolved, `hold ${holdId} was already ${row.status} (${row.resolvedAt})`);
    return;
  }
  const held = BigInt(row.amount);
  const done: HoldFields = { transferId, type: command.type, holdId, from, to: row.to };
  if (command.type === 'void_hold') {
    task.stores.adjustPending(from, -held, 0n);
    finish(task, holdId, { ...row, status: 'voided', resolvedAt: task.out.nowIso, resolvedBy: transferId });
    sendHoldLeg(task, { leg: 'hold_release', holdId, from, to: row.to });
    recordFinal(task, from, transferId, command.fingerprint, 'completed');
    const value = { ...done, amount: money(held, row.currency), currency: row.currency, status: 'voided' };
    task.out.outcome('completed', { ...value, requestedAt: command.requestedAt }, from);
    return;
  }
  if (command.currency !== undefined && command.currency !== row.currency) {
    fail('currency_mismatch', `hold ${holdId} is in ${row.currency}, not ${command.currency}`);
    return;
  }
  const posted = command.amount ?? held;
  if (posted > held) {
    fail(
      'amount_exceeds_hold',
      `hold ${holdId} holds ${money(held, row.currency)} ${row.currency}, less than the amount`,
    );
    return;
  }
  task.stores.adjustPending(from, -held, 0n);
  // The posted money leaves `from` now and is in flight until the to task credits it (hold_settle).
  task.stores.adjust(from, -posted, posted);
  const postedRow: HoldRow = {
    ...row,
    status: 'posted',
    postedAmount: posted.toString(),
    resolvedAt: task.out.nowIso,
    resolvedBy: transferId,
    settling: true,
  };
  finish(task, holdId, postedRow);
  sendHoldLeg(task, { leg: 'hold_post', holdId, from, to: row.to, amount: posted, currency: row.currency });
  recordFinal(task, from, transferId, command.fingerprint, 'completed');
  const value = {
    ...done,
    amount: money(posted, row.currency),
    heldAmount: money(held, row.currency),
    currency: row.currency,
    status: 'posted',
    requestedAt: command.requestedAt,
  };
  task.out.outcome('completed', value, from);
}

/** Writes a resolved hold, drops its deadline from the index and schedules forgetting it (hold-expiry.ts). */
function finish(task: HoldTask, holdId: string, row: HoldRow): void {
  task.holds.putHold(holdId, row);
  task.holds.unindex(row, holdId);
  task.holds.forgetLater('h', row.from, holdId, task.out.nowMs);
}

/** The deadline passed: release the reservation on both sides and answer `expired` (key = the hold's id). */
export function expireHold(task: HoldTask, holdId: string, row: HoldRow): void {
  task.stores.adjustPending(row.from, -BigInt(row.amount), 0n);
  finish(task, holdId, { ...row, status: 'expired', resolvedAt: task.out.nowIso });
  sendHoldLeg(task, { leg: 'hold_release', holdId, from: row.from, to: row.to });
  const value: HoldFields = {
    transferId: holdId,
    type: 'hold_expiry',
    holdId,
    from: row.from,
    to: row.to,
    amount: money(row.amount, row.currency),
    currency: row.currency,
    status: 'expired',
    requestedAt: new Date(row.expiresAtMs).toISOString(),
  };
  task.out.outcome('completed', value, row.from);
}
