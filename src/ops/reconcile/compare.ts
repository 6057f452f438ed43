// The comparison of `bankstream reconcile`: every account across the views, then the invariants (per
// currency Σ balances = Σ completed deposits − Σ completed withdrawals; no transfer in flight; Postgres
// `transactions` equals the outcome topics one for one; no unresolved sink reject), into one report.
import { currencyDigits, formatMoney } from '../../bank/money.ts';
import { transferIdOfDedupKey } from '../../bank/stores.ts';
import type { Config } from '../../config/config.ts';
import { logicalRecord } from '../../stores/segmented-store.ts';
import { compareHolds } from './holds.ts';
import {
  type AccountLine,
  type ApiView,
  type CurrencyTotal,
  type Difference,
  type DifferenceKind,
  type OutcomeView,
  type PostgresView,
  type QuietState,
  type ReconcileReport,
  type StoreView,
  addTo,
} from './model.ts';

/**
 * How long past its deadline an open hold may be before it is reported: the expiry punctuator runs every
 * punctuateIntervalMs (100 ms by default) on the task's clock, which may lag the checker's by seconds.
 */
export const HOLD_OVERDUE_GRACE_MS = 10_000;

export interface Views {
  quiet: QuietState;
  stores: StoreView;
  outcomes: OutcomeView;
  postgres: PostgresView;
  api: ApiView | null;
}

class Findings {
  readonly differences: Difference[] = [];
  readonly differingAccounts: AccountLine[] = [];
  total = 0;
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  add(difference: Difference): void {
    this.total++;
    if (this.differences.length < this.#max) this.differences.push(difference);
  }

  account(line: AccountLine): void {
    if (this.differingAccounts.length < this.#max) this.differingAccounts.push(line);
  }
}

export function buildReport(config: Config, views: Views, differencesMax: number): ReconcileReport {
  const findings = new Findings(differencesMax);
  const { quiet, stores, outcomes, postgres, api } = views;
  if (!quiet.quiet) findings.add({ kind: 'not_quiet', message: describeNotQuiet(quiet) });
  for (const d of [...stores.unreadable, ...outcomes.unreadable, ...outcomes.truncated]) findings.add(d);
  const ids = accountIds(stores, outcomes, postgres);
  for (const id of ids) compareAccount(id, views, findings);
  const currencies = compareCurrencies(stores, outcomes, findings);
  compareTransactions(outcomes, postgres, config.dedupRetentionMs, findings);
  const holds = compareHolds(views, Date.now(), HOLD_OVERDUE_GRACE_MS, (d) => findings.add(d));
  for (const reject of postgres.rejects) {
    findings.add({
      kind: 'sink_reject',
      ...(reject.key === null ? {} : { transferId: reject.key }),
      message: `${reject.where}${reject.key === null ? '' : ` (key ${JSON.stringify(reject.key)})`} could not be stored in Postgres (${reject.error}); rejected ${reject.rejectedAt}, unresolved in sink_rejects`,
    });
  }
  for (const [key, entry] of stores.inFlightTransfers) {
    const transferId = transferIdOfDedupKey(logicalRecord(key, null).key);
    findings.add({
      kind: 'in_flight',
      transferId,
      accountId: entry.pending?.from,
      message: `transfer ${transferId} is still in flight (from ${entry.pending?.from ?? '?'} to ${entry.pending?.to ?? '?'})`,
    });
  }
  return {
    ok: findings.total === 0,
    appId: config.appId,
    checkedAt: new Date().toISOString(),
    quiet,
    counts: {
      storeAccounts: stores.accounts.size,
      postgresAccounts: postgres.accounts.size,
      apiAccounts: api ? [...api.values()].filter((a) => a.balance !== null).length : null,
      completed: outcomes.completed,
      failed: outcomes.failed,
      conflicts: outcomes.conflicts,
      postgresTransactions: postgres.transactions.size,
      postgresConflicts: postgres.conflicts,
      sinkRejects: postgres.rejects.length,
      inFlightAccounts: [...stores.balances.values()].filter((b) => BigInt(b.inFlight) !== 0n).length,
      inFlightTransfers: stores.inFlightTransfers.size,
      holds,
    },
    currencies,
    accountsCompared: ids.length,
    differingAccounts: findings.differingAccounts,
    differences: findings.differences,
    differencesTotal: findings.total,
  };
}

function compareAccount(id: string, views: Views, findings: Findings): void {
  const line = accountLine(id, views);
  const before = findings.total;
  const differs = (kind: DifferenceKind, message: string) =>
    findings.add({ kind, accountId: id, message: `${id}: ${message}` });
  if (line.stores === null) differs('missing_account', 'not in the stores');
  if (line.postgres === null) differs('missing_account', 'not in Postgres');
  const reference = line.stores ?? '0';
  if (line.stores !== null && !sameMoney(line.outcomes, line.stores))
    differs('balance_mismatch', `outcomes total ${line.outcomes} ≠ stores ${line.stores}`);
  if (line.postgres !== null && !sameMoney(line.postgres, reference))
    differs('balance_mismatch', `postgres ${line.postgres} ≠ stores ${reference}`);
  if (line.api !== undefined && line.api !== null && !sameMoney(line.api, reference))
    differs('balance_mismatch', `api ${line.api} ≠ stores ${reference}`);
  const apiError = views.api?.get(id)?.error;
  if (apiError !== undefined) differs('api_error', `api: ${apiError}`);
  else if (line.api === null && line.stores !== null) differs('missing_account', 'not found through the API');
  if (line.inFlight !== null && !sameMoney(line.inFlight, '0'))
    differs('in_flight', `${line.inFlight} ${line.currency ?? ''} in flight`);
  if (line.storeStatus !== null && line.postgresStatus !== null && line.storeStatus !== line.postgresStatus) {
    differs('status_mismatch', `status ${line.postgresStatus} in Postgres, ${line.storeStatus} in the stores`);
  }
  if (findings.total > before) findings.account(line);
}

function accountLine(id: string, views: Views): AccountLine {
  const { stores, outcomes, postgres, api } = views;
  const currency = currencyResolver(stores, outcomes, postgres)(id);
  const digits = (currency === null ? undefined : currencyDigits(currency)) ?? 4;
  const balance = stores.balances.get(id);
  const row = postgres.accounts.get(id);
  const apiBalance = api?.get(id);
  return {
    accountId: id,
    currency,
    stores: balance
      ? formatMoney(BigInt(balance.balance), digits)
      : stores.accounts.has(id)
        ? formatMoney(0n, digits)
        : null,
    inFlight: balance ? formatMoney(BigInt(balance.inFlight), digits) : null,
    outcomes: formatMoney(outcomes.deltas.get(id) ?? 0n, digits),
    postgres: row ? row.balance : null,
    ...(api ? { api: apiBalance?.balance ?? null } : {}),
    storeStatus: stores.accounts.get(id)?.status ?? null,
    postgresStatus: row?.status ?? null,
  };
}

/** Per currency: Σ store balances = Σ completed deposits − Σ completed withdrawals. */
function compareCurrencies(stores: StoreView, outcomes: OutcomeView, findings: Findings): CurrencyTotal[] {
  const balances = new Map<string, bigint>();
  for (const [id, row] of stores.balances) {
    const currency = stores.accounts.get(id)?.currency ?? outcomes.currencyOf.get(id);
    if (currency !== undefined) addTo(balances, currency, BigInt(row.balance));
  }
  const currencies = [
    ...new Set([...balances.keys(), ...outcomes.deposits.keys(), ...outcomes.withdrawals.keys()]),
  ].sort();
  return currencies.map((currency) => {
    const digits = currencyDigits(currency) ?? 4;
    const [sum, deposits, withdrawals] = [balances, outcomes.deposits, outcomes.withdrawals].map(
      (m) => m.get(currency) ?? 0n,
    ) as [bigint, bigint, bigint];
    const ok = sum === deposits - withdrawals;
    const total: CurrencyTotal = {
      currency,
      balances: formatMoney(sum, digits),
      deposits: formatMoney(deposits, digits),
      withdrawals: formatMoney(withdrawals, digits),
      ok,
    };
    if (!ok)
      findings.add({
        kind: 'invariant',
        message: `${currency}: Σ balances ${total.balances} ≠ Σ deposits ${total.deposits} − Σ withdrawals ${total.withdrawals}`,
      });
    return total;
  });
}

/**
 * Postgres `transactions` against the outcome topics, record for record by source position, the same
 * status. And the dedup rule: one (acted-on account, transferId) decided twice within the retention
 * is a duplicate the processor should have suppressed (after the retention it is a new command).
 */
function compareTransactions(
  outcomes: OutcomeView,
  postgres: PostgresView,
  retentionMs: number,
  findings: Findings,
): void {
  for (const [position, outcome] of outcomes.records) {
    const name = `transfer ${outcome.transferId}${outcome.account === null ? '' : ` of ${outcome.account}`} (${outcome.where})`;
    const stored = postgres.transactions.get(position);
    const ids = { transferId: outcome.transferId, ...(outcome.account === null ? {} : { accountId: outcome.account }) };
    if (stored === undefined)
      findings.add({ kind: 'transaction_missing', ...ids, message: `${name}, ${outcome.status}, is not in Postgres` });
    else if (stored.status !== outcome.status)
      findings.add({
        kind: 'transaction_status',
        ...ids,
        message: `${name} is ${stored.status} in Postgres, ${outcome.status} in the topics`,
      });
  }
  for (const [position, stored] of postgres.transactions) {
    if (!outcomes.records.has(position))
      findings.add({
        kind: 'transaction_extra',
        transferId: stored.transferId,
        message: `transfer ${stored.transferId} (${position.replaceAll('\u0000', '-')}) is in Postgres but has no outcome at that position in the topics`,
      });
  }
  for (const [key, times] of outcomes.decisions) {
    if (times.length < 2) continue;
    const sorted = [...times].sort((a, b) => a - b);
    const close = sorted.some((t, i) => i > 0 && !(t - (sorted[i - 1] ?? t) >= retentionMs));
    if (!close) continue;
    const [account, transferId] = JSON.parse(key) as [string | null, string];
    findings.add({
      kind: 'duplicate_outcome',
      transferId,
      ...(account === null ? {} : { accountId: account }),
      message: `transfer ${transferId}${account === null ? '' : ` of ${account}`} has ${times.length} outcomes in the topics within the dedup retention`,
    });
  }
  if (outcomes.conflicts !== postgres.conflicts) {
    findings.add({
      kind: 'conflicts_mismatch',
      message: `${outcomes.conflicts} idempotency conflicts in the topics, ${postgres.conflicts} in Postgres`,
    });
  }
}

export function accountIds(stores: StoreView, outcomes: OutcomeView, postgres: PostgresView): string[] {
  return [
    ...new Set([
      ...stores.accounts.keys(),
      ...stores.balances.keys(),
      ...outcomes.deltas.keys(),
      ...postgres.accounts.keys(),
    ]),
  ].sort();
}

function currencyResolver(
  stores: StoreView,
  outcomes: OutcomeView,
  postgres: PostgresView,
): (id: string) => string | null {
  return (id) =>
    stores.accounts.get(id)?.currency ?? postgres.accounts.get(id)?.currency ?? outcomes.currencyOf.get(id) ?? null;
}

/** Two decimal strings hold the same amount ("10.5" = "10.50"); exact, no floating point. */
function sameMoney(a: string, b: string): boolean {
  const x = scaled(a);
  const y = scaled(b);
  return x !== undefined && y !== undefined && x === y;
}

const SCALE_DIGITS = 8;

function scaled(text: string): bigint | undefined {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text.trim());
  if (!match) return undefined;
  const [, sign, integer = '0', fraction = ''] = match;
  if (fraction.length > SCALE_DIGITS && /[1-9]/.test(fraction.slice(SCALE_DIGITS))) return undefined;
  const value = BigInt(integer + fraction.slice(0, SCALE_DIGITS).padEnd(SCALE_DIGITS, '0'));
  return sign === '-' ? -value : value;
}

function describeNotQuiet(quiet: QuietState): string {
  const parts = [`${quiet.processorPending} records not yet processed`, `${quiet.sinkPending} not yet sunk`];
  if (quiet.openTransactions.length > 0) parts.push(`open transactions on ${quiet.openTransactions.join(', ')}`);
  return `the system was not quiet after ${quiet.waitedMs} ms: ${parts.join(', ')}; differences below may be lag`;
}
