// The answer of GET /v1/accounts/:id: an account's committed store state as the API shows it (decimal
// strings, never numbers), with the changelog positions the read had reached and who served it.
import type { AccountRow, BalanceRow } from '../bank/stores.ts';
import { currencyDigits, formatMoney } from '../bank/money.ts';
import type { Owner } from '../cluster/directory-records.ts';

export interface AccountView {
  accountId: string;
  ownerId: string;
  currency: string;
  status: 'open' | 'closed';
  /** The posted balance (README-BANK "Holds: balances"); `posted` says the same. */
  balance: string;
  inFlight: string;
  posted: string;
  /** Held on this account as the debited side (pending holds). */
  pendingDebits: string;
  /** Held for this account as the credited side; never available before it is posted. */
  pendingCredits: string;
  /** posted − pendingDebits + overdraftLimit: what a withdrawal, transfer or hold may take. */
  available: string;
  overdraftLimit: string;
  openedAt: string;
  closedAt?: string;
  /** The changelog offsets the committed state read had reached, per store. */
  position: { partition: number; accounts: string | null; balances: string | null };
  servedBy: Owner;
  /** Only on a read from a standby (allowStale): how far behind the changelogs it was. */
  stale?: { standby: true; lagRecords: string };
}

export function toView(
  accountId: string,
  row: AccountRow,
  balance: BalanceRow | undefined,
  position: AccountView['position'],
  servedBy: Owner,
): AccountView {
  const digits = currencyDigits(row.currency) ?? 2;
  const money = (minor: string | bigint | undefined) => formatMoney(BigInt(minor ?? '0'), digits);
  const posted = BigInt(balance?.balance ?? '0');
  const pendingDebits = BigInt(balance?.pendingDebits ?? '0');
  const view: AccountView = {
    accountId,
    ownerId: row.ownerId,
    currency: row.currency,
    status: row.status,
    balance: money(balance?.balance),
    inFlight: money(balance?.inFlight),
    posted: money(posted),
    pendingDebits: money(pendingDebits),
    pendingCredits: money(balance?.pendingCredits),
    available: money(posted - pendingDebits + BigInt(row.overdraftLimit)),
    overdraftLimit: money(row.overdraftLimit),
    openedAt: row.openedAt,
    position,
    servedBy,
  };
  if (row.closedAt !== undefined) view.closedAt = row.closedAt;
  return view;
}
