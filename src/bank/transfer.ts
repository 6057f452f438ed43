// Step 3 of a transfer's path (README-BANK.md): its legs. A transfer is decided where its accounts live:
//   debit  (task owning `from`)  validate from, take the money, mark it in flight;
//          when `to` lives in the same task, validate and credit it at once and complete.
//   credit (task owning `to`)    validate to; credit and answer transaction_completed, then settle;
//                                or refuse and send the money back with a refund leg.
//   settle (task owning `from`)  forget the in-flight amount: the transfer is completed.
//   refund (task owning `from`)  give the money back and answer transaction_failed with the code.
// The from task hears back either way, so `inFlight` is exact at all times and nothing is left in flight.
import { hasFunds, isRefusal, usableAccount } from './accounts.ts';
import type { TransferCommand, TransferFields } from './commands.ts';
import { type BankTask, completeCommand, failCommand, recordFinal } from './decide.ts';
import type { CreditLeg, RefundLeg, SettleLeg } from './legs.ts';
import { currencyDigits, formatMoney } from './money.ts';
import { type PendingTransfer, type TransferEntry, creditedKey, dedupKey, findDedup } from './stores.ts';

/** The debit leg, already past the idempotency gate. `toIsLocal`: this task also owns `to`. */
export function debit(task: BankTask, command: TransferCommand, toIsLocal: boolean): void {
  const { transferId, from, to, amount } = command;
  if (from === to) {
    failCommand(task, command, 'same_account', `transfer ${transferId} has the same from and to account ${from}`);
    return;
  }
  const source = usableAccount(task, from, command.currency);
  if (isRefusal(source)) {
    failCommand(task, command, source.code, source.reason);
    return;
  }
  if (!hasFunds(task, from, source, amount)) {
    failCommand(task, command, 'insufficient_funds', `account ${from} cannot cover the transfer`);
    return;
  }
  if (toIsLocal) {
    const target = usableAccount(task, to, command.currency);
    if (isRefusal(target)) {
      failCommand(task, command, target.code, target.reason);
      return;
    }
    task.stores.adjust(from, -amount);
    task.stores.adjust(to, amount);
    completeCommand(task, command);
    return;
  }
  task.stores.adjust(from, -amount, amount);
  const pending: PendingTransfer = {
    from,
    to,
    amount: amount.toString(),
    currency: command.currency,
    requestedAt: command.requestedAt,
  };
  if (command.reference !== undefined) pending.reference = command.reference;
  task.stores.transfers.put(dedupKey(from, transferId), {
    fingerprint: command.fingerprint,
    status: 'in_flight',
    decidedAt: task.out.nowMs,
    pending,
  });
  task.out.leg({
    leg: 'credit',
    transferId,
    from,
    to,
    amount,
    currency: command.currency,
    reference: command.reference,
    requestedAt: command.requestedAt,
  });
}

/**
 * The credit leg, in the task owning `to`. Legs come only from debit(), once each (exactly-once), but a
 * verbatim copy of one written to the credits topic carries a valid MAC: the credited mark makes the
 * to task apply (or refuse) a leg of (from, transferId) at most once, and a copy goes to the DLQ with no
 * outcome and no settle or refund leg. (A transaction that aborts takes the mark with it, so a retried
 * leg is applied as the first time.)
 */
export function credit(task: BankTask, leg: CreditLeg): void {
  const markKey = creditedKey(leg.from, leg.transferId);
  const mark = task.stores.transfers.get(markKey);
  if (mark !== undefined) {
    task.out.deadLetter(
      `credit leg for transfer ${leg.transferId} from ${leg.from} was already ${mark.status === 'completed' ? 'applied' : 'refused'} ` +
        `(${new Date(mark.decidedAt).toISOString()}): a copy of it, not applied again`,
    );
    return;
  }
  const target = usableAccount(task, leg.to, leg.currency);
  if (isRefusal(target)) {
    task.stores.transfers.put(markKey, creditedMark(task, leg, 'failed'));
    task.out.leg({
      leg: 'refund',
      transferId: leg.transferId,
      from: leg.from,
      code: target.code,
      reason: target.reason,
    });
    return;
  }
  task.stores.transfers.put(markKey, creditedMark(task, leg, 'completed'));
  task.stores.adjust(leg.to, leg.amount);
  const fields: TransferFields = {
    transferId: leg.transferId,
    type: 'transfer',
    from: leg.from,
    to: leg.to,
    amount: formatMoney(leg.amount, currencyDigits(leg.currency)!),
    currency: leg.currency,
    requestedAt: leg.requestedAt,
  };
  if (leg.reference !== undefined) fields.reference = leg.reference;
  task.out.completed(fields);
  task.out.leg({ leg: 'settle', transferId: leg.transferId, from: leg.from });
}

function creditedMark(task: BankTask, leg: CreditLeg, status: 'completed' | 'failed'): TransferEntry {
  // The fingerprint is never compared (no command is admitted under this key); it says what the mark is.
  return { fingerprint: `credit leg to ${leg.to}`, status, decidedAt: task.out.nowMs };
}

/** The to task credited: the money has arrived, the transfer is completed (already answered by the to task). */
export function settle(task: BankTask, leg: SettleLeg): void {
  const entry = inFlightEntry(task, leg);
  if (entry === undefined) return;
  task.stores.adjust(leg.from, 0n, -BigInt(entry.pending.amount));
  recordFinal(task, leg.from, leg.transferId, entry.fingerprint, 'completed');
}

/** The to task refused: credit the money back and answer for the transfer. */
export function refund(task: BankTask, leg: RefundLeg): void {
  const entry = inFlightEntry(task, leg);
  if (entry === undefined) return;
  const amount = BigInt(entry.pending.amount);
  task.stores.adjust(leg.from, amount, -amount);
  recordFinal(task, leg.from, leg.transferId, entry.fingerprint, 'failed', leg.code);
  task.out.audit({ event: 'transfer_refunded', accountId: leg.from, transferId: leg.transferId, code: leg.code });
  task.out.failed(pendingFields(leg.transferId, entry.pending), leg.code, leg.reason);
}

/**
 * The in-flight entry a settle or refund leg finishes. Anything else (unknown transfer, already
 * final, another from account) means a bug or a foreign writer on the credits topic: the leg goes
 * to the DLQ for an operator, and the partition goes on.
 */
function inFlightEntry(
  task: BankTask,
  leg: SettleLeg | RefundLeg,
): (TransferEntry & { pending: PendingTransfer }) | undefined {
  const { entry } = findDedup(task.stores.transfers, leg.from, leg.transferId);
  if (entry?.status === 'in_flight' && entry.pending?.from === leg.from)
    return entry as TransferEntry & { pending: PendingTransfer };
  const state = entry === undefined ? 'unknown' : `${entry.status}, from ${entry.pending?.from ?? '?'}`;
  task.out.deadLetter(
    `${leg.leg} leg for transfer ${leg.transferId} from ${leg.from} does not match an in-flight transfer (${state})`,
  );
  return undefined;
}

function pendingFields(transferId: string, pending: PendingTransfer): TransferFields {
  const fields: TransferFields = {
    transferId,
    type: 'transfer',
    from: pending.from,
    to: pending.to,
    amount: formatMoney(BigInt(pending.amount), currencyDigits(pending.currency)!),
    currency: pending.currency,
    requestedAt: pending.requestedAt,
  };
  if (pending.reference !== undefined) fields.reference = pending.reference;
  return fields;
}
