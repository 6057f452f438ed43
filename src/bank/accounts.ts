// Commands on one account, decided wholly in the task that owns it: open_account, close_account,
// and the single-leg money commands (deposit, withdrawal). Also the account checks transfers share.
import type { CloseAccount, OpenAccount, SingleLegCommand } from './commands.ts';
import { type BankTask, completeCommand, failCommand } from './decide.ts';
import { currencyDigits, formatMoney } from './money.ts';
import type { AccountRejectionCode } from './failure-codes.ts';
import type { AccountRow } from './stores.ts';

/** Why an account cannot take part in a money command. */
export interface AccountRefusal {
  readonly code: 'account_not_found' | 'account_closed' | 'currency_mismatch';
  readonly reason: string;
}

/** The account if it exists, is open and holds `currency`; otherwise the first reason it cannot be used. */
export function usableAccount(task: BankTask, accountId: string, currency: string): AccountRow | AccountRefusal {
  const account = task.stores.account(accountId);
  if (account === undefined) return { code: 'account_not_found', reason: `account ${accountId} does not exist` };
  if (account.status !== 'open') return { code: 'account_closed', reason: `account ${accountId} is closed` };
  if (account.currency !== currency) {
    return { code: 'currency_mismatch', reason: `account ${accountId} holds ${account.currency}, not ${currency}` };
  }
  return account;
}

export function isRefusal(value: AccountRow | AccountRefusal): value is AccountRefusal {
  return 'code' in value;
}

/**
 * Whether `amount` is available: it can leave the account without taking its posted balance minus its
 * pending debits (held money) below minus its overdraft limit. Pending credits never count.
 */
export function hasFunds(task: BankTask, accountId: string, account: AccountRow, amount: bigint): boolean {
  const { balance, pendingDebits = 0n } = task.stores.balance(accountId);
  return balance - pendingDebits - amount >= -BigInt(account.overdraftLimit);
}

export function openAccount(task: BankTask, command: OpenAccount): void {
  const { accountId } = command;
  if (task.stores.account(accountId) !== undefined) {
    reject(task, accountId, 'account_exists', `account ${accountId} already exists`);
    return;
  }
  task.stores.accounts.put(accountId, {
    ownerId: command.ownerId,
    currency: command.currency,
    overdraftLimit: command.overdraftLimit.toString(),
    status: 'open',
    openedAt: task.out.nowIso,
  });
  task.stores.putBalance(accountId, { balance: 0n, inFlight: 0n });
  task.out.audit({
    event: 'account_opened',
    accountId,
    ownerId: command.ownerId,
    currency: command.currency,
    overdraftLimit: formatMoney(command.overdraftLimit, currencyDigits(command.currency)!),
  });
}

/** Closes an account only when nothing is in it or on its way out: money is never closed away. */
export function closeAccount(task: BankTask, command: CloseAccount): void {
  const { accountId } = command;
  const account = task.stores.account(accountId);
  if (account === undefined) {
    reject(task, accountId, 'account_not_found', `account ${accountId} does not exist`);
    return;
  }
  if (account.status === 'closed') {
    reject(task, accountId, 'account_closed', `account ${accountId} is already closed`);
    return;
  }
  const { balance, inFlight, pendingDebits = 0n, pendingCredits = 0n } = task.stores.balance(accountId);
  if (balance !== 0n || inFlight !== 0n || pendingDebits !== 0n || pendingCredits !== 0n) {
    const digits = currencyDigits(account.currency)!;
    const pending = pendingDebits !== 0n || pendingCredits !== 0n ? ' and pending holds' : '';
    const reason = `account ${accountId} holds ${formatMoney(balance, digits)} ${account.currency} with ${formatMoney(inFlight, digits)} in flight${pending}`;
    reject(task, accountId, 'balance_not_zero', reason);
    return;
  }
  task.stores.accounts.put(accountId, { ...account, status: 'closed', closedAt: task.out.nowIso });
  task.out.audit({ event: 'account_closed', accountId });
}

/** A deposit or withdrawal, already past the idempotency gate. */
export function singleLeg(task: BankTask, command: SingleLegCommand): void {
  const account = usableAccount(task, command.accountId, command.currency);
  if (isRefusal(account)) {
    failCommand(task, command, account.code, account.reason);
    return;
  }
  if (command.type === 'withdrawal' && !hasFunds(task, command.accountId, account, command.amount)) {
    failCommand(task, command, 'insufficient_funds', `account ${command.accountId} cannot cover the withdrawal`);
    return;
  }
  task.stores.adjust(command.accountId, command.type === 'deposit' ? command.amount : -command.amount);
  completeCommand(task, command);
}

function reject(task: BankTask, accountId: string, code: AccountRejectionCode, reason: string): void {
  task.out.audit({ event: 'account_command_rejected', accountId, code, reason });
}
