// The stable result codes of the bank (TigerBeetle-style: one per reason, never renamed). Their own file
// because both the outputs (outcomes.ts) and the internal legs (legs.ts, a refund carries its code) use them.

/** Stable failure codes of `transaction_failed` (TigerBeetle-style: one per reason, never renamed). */
export type TransferFailureCode =
  | 'insufficient_funds'
  | 'account_not_found'
  | 'account_closed'
  | 'currency_mismatch'
  | 'same_account'
  | 'invalid_amount'
  | 'idempotency_conflict'
  | 'malformed'
  // Holds (README-BANK "Holds").
  | 'hold_not_found'
  | 'hold_not_open'
  | 'hold_already_posted'
  | 'hold_already_voided'
  | 'hold_expired'
  | 'amount_exceeds_hold';

/** Codes of `account_command_rejected`; `account_closed` answers closing an account that is already closed. */
export type AccountRejectionCode =
  | 'account_exists'
  | 'account_not_found'
  | 'balance_not_zero'
  | 'account_closed'
  | 'malformed';
