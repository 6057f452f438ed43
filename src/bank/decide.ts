// What every handler needs to decide a money command: the task's stores and outputs, and the two
// ways a command ends (recorded in the dedup store, then answered exactly once).
import { type MoneyCommand, transferFieldsOf } from './commands.ts';
import type { TransferFailureCode } from './failure-codes.ts';
import type { Outputs } from './outcomes.ts';
import { type BankStores, type TransferEntry, findDedup } from './stores.ts';

/** One task's view: its stores, its outputs, and which accounts it owns. */
export interface BankTask {
  readonly stores: BankStores;
  readonly out: Outputs;
  /** Whether this task owns `accountId` (same murmur2 partition), so it may read and write it. */
  ownsAccount(accountId: string): boolean;
}

/** The account a money command acts on: its record key, where its transferId is unique. */
export function actedAccount(command: MoneyCommand): string {
  return command.type === 'transfer' ? command.from : command.accountId;
}

/**
 * Records a decided money command of `account` (its record key), keeping the conflicts it has already
 * answered, under the key its entry already has (a legacy in-flight entry is finished in place).
 */
export function recordFinal(
  task: BankTask,
  account: string,
  transferId: string,
  fingerprint: string,
  status: 'completed' | 'failed',
  code?: TransferFailureCode,
): void {
  const { key, entry: previous } = findDedup(task.stores.transfers, account, transferId);
  const entry: TransferEntry = { fingerprint, status, decidedAt: task.out.nowMs };
  if (code !== undefined) entry.code = code;
  if (previous?.conflicts) entry.conflicts = previous.conflicts;
  task.stores.transfers.put(key, entry);
}

export function completeCommand(task: BankTask, command: MoneyCommand): void {
  recordFinal(task, actedAccount(command), command.transferId, command.fingerprint, 'completed');
  task.out.completed(transferFieldsOf(command));
}

export function failCommand(task: BankTask, command: MoneyCommand, code: TransferFailureCode, reason: string): void {
  recordFinal(task, actedAccount(command), command.transferId, command.fingerprint, 'failed', code);
  task.out.failed(transferFieldsOf(command), code, reason);
}
