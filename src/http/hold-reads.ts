// A hold's state from the read model (the holds table of migrations/0004_holds.sql, written by the sink):
// GET /v1/holds/:id, and the `from` account a post or void is keyed by when the client did not name it.
// A hold is identified as the processor identifies it, by (from, holdId): the same id on two accounts is
// two holds, told apart with ?account= (or the body's `from`). Read from the primary: a post just after
// its hold was placed must not miss a row a replica has not replayed yet.
import { currencyDigits, formatMoney, parseMoney } from '../bank/money.ts';
import type { ReadModel } from './history.ts';

export interface HoldDocument {
  holdId: string;
  from: string;
  to: string;
  status: 'pending' | 'posted' | 'voided' | 'expired';
  /** The held amount. */
  amount: string;
  currency: string;
  /** A posted hold: what moved; releasedAmount is the rest (amount − postedAmount), given back to from. */
  postedAmount?: string;
  releasedAmount?: string;
  expiresAt: string | null;
  placedAt: string | null;
  resolvedAt?: string;
  /** transferId of the post or void that resolved it (none for an expiry). */
  resolvedBy?: string;
}

/** Holds listed by one lookup at most (the same id on more accounts is not listed). */
export const HOLD_ROWS_MAX = 20;

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;
const HOLD_SQL = `
SELECT from_account, hold_id, to_account, amount::text AS amount, currency, status,
       posted_amount::text AS posted_amount,
       to_char(expires_at AT TIME ZONE 'UTC', ${ISO}) AS expires_at,
       to_char(placed_at AT TIME ZONE 'UTC', ${ISO}) AS placed_at,
       to_char(resolved_at AT TIME ZONE 'UTC', ${ISO}) AS resolved_at,
       resolved_by
  FROM holds WHERE hold_id = $1 AND ($2::text IS NULL OR from_account = $2)
 ORDER BY from_account LIMIT $3`;

interface HoldRow {
  from_account: string;
  hold_id: string;
  to_account: string;
  amount: string;
  currency: string;
  status: HoldDocument['status'];
  posted_amount: string | null;
  expires_at: string | null;
  placed_at: string | null;
  resolved_at: string | null;
  resolved_by: string | null;
}

/** The holds recorded under `holdId` (only that of `from` when given), at most HOLD_ROWS_MAX. */
export async function holdsById(readModel: ReadModel, holdId: string, from?: string): Promise<HoldDocument[]> {
  const rows = await readModel.primaryRows<HoldRow>(HOLD_SQL, [holdId, from ?? null, HOLD_ROWS_MAX]);
  return rows.map(documentOf);
}

function documentOf(row: HoldRow): HoldDocument {
  const digits = currencyDigits(row.currency) ?? 2;
  const minor = (text: string): bigint | undefined => {
    const parsed = parseMoney(text, digits, { allowZero: true });
    return parsed.ok ? parsed.minor : undefined;
  };
  const held = minor(row.amount);
  const document: HoldDocument = {
    holdId: row.hold_id,
    from: row.from_account,
    to: row.to_account,
    status: row.status,
    amount: held === undefined ? row.amount : formatMoney(held, digits),
    currency: row.currency,
    expiresAt: row.expires_at,
    placedAt: row.placed_at,
  };
  if (row.posted_amount !== null) {
    const posted = minor(row.posted_amount);
    document.postedAmount = posted === undefined ? row.posted_amount : formatMoney(posted, digits);
    if (posted !== undefined && held !== undefined) document.releasedAmount = formatMoney(held - posted, digits);
  }
  if (row.resolved_at !== null) document.resolvedAt = row.resolved_at;
  if (row.resolved_by !== null) document.resolvedBy = row.resolved_by;
  return document;
}
