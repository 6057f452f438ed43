// What every handler needs to decide a money command: the task's stores and outputs, and the two
// ways a command ends (recorded in the dedup store, then answered exactly once).
import { type MoneyCommand, transferFieldsOf } from './commands.ts';
import { type Outputs, type TransferFailureCode } from './outcomes.ts';
import { type BankStores, type TransferEntry } from './stores.ts';

/** One task's view: its stores, its outputs, and which accounts it owns. */
export interface BankTask {
  readonly stores: BankStores;
  readonly out: Outputs;
  /** Whether this task owns `accountId` (same murmur2 partition), so it may read and write it. */
  ownsAccount(accountId: string): boolean;
}

/** Records a decided money command, keeping the conflicts it has already answered. */
export function recordFinal(task: BankTask, transferId: string, fingerprint: string, status: 'completed' | 'failed', code?: TransferFailureCode): void {
  const previous = task.stores.transfers.get(transferId);
  const entry: TransferEntry = { fingerprint, status, decidedAt: task.out.nowMs };
  if (code !== undefined) entry.code = code;
  if (previous?.conflicts) entry.conflicts = previous.conflicts;
  task.stores.transfers.put(transferId, entry);
}

export function completeCommand(task: BankTask, command: MoneyCommand): void {
  recordFinal(task, command.transferId, command.fingerprint, 'completed');
  task.out.completed(transferFieldsOf(command));
}

export function failCommand(task: BankTask, command: MoneyCommand, code: TransferFailureCode, reason: string): void {
  recordFinal(task, command.transferId, command.fingerprint, 'failed', code);
  task.out.failed(transferFieldsOf(command), code, reason);
}
