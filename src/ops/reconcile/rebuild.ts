// Two views rebuilt from Kafka: the stores as a restoring task would load them (the last committed value
// per key of each changelog, authenticated as restore authenticates it), and what transaction_completed and
// transaction_failed say each account must hold.
import { currencyDigits, parseMoney } from '../../bank/money.ts';
import type { AccountRow, BalanceRow, TransferEntry } from '../../bank/stores.ts';
import type { Config } from '../../config/config.ts';
import type { FetchedRecord } from '../../kafka/fetcher.ts';
import { recordCoordinate, verifyChangelogRecord } from '../../kafka/record-mac.ts';
import { IDEMPOTENCY_CONFLICT } from '../../sinks/records.ts';
import { logicalRecord } from '../../stores/segmented-store.ts';
import { type Difference, type OutcomeView, type StoreView, addTo, positionKey, where } from './model.ts';
import { changelogs, type TopicReader } from './read.ts';
import { addHoldOutcome, isHoldOutcome } from './holds.ts';
import type { HoldStatus } from '../../bank/hold-store.ts';

/** The stores as a restoring task would rebuild them: the last committed value per key. */
export async function readStores(config: Config, reader: TopicReader): Promise<StoreView> {
  const view: StoreView = {
    accounts: new Map(),
    balances: new Map(),
    inFlightTransfers: new Map(),
    holds: new Map(),
    unreadable: [],
  };
  const { balances, accounts, transfers, holds } = changelogs(config);
  const storeOf = new Map([
    [balances, 'balances'],
    [accounts, 'accounts'],
    [transfers, 'transfers'],
    [holds, 'holds'],
  ]);
  await reader.readAll([balances, accounts, transfers, holds], (record) => {
    const key = record.key?.toString('utf8');
    if (key === undefined) return;
    // What a restoring task would refuse is no part of the stores: reported, never counted.
    if (!authenticChangelogRecord(config, storeOf.get(record.topic)!, record, view.unreadable)) return;
    const value = parseJson(record, view.unreadable);
    if (value === undefined) return;
    if (record.topic === balances)
      setOrDelete(view.balances, key, value === null ? null : balanceRow(value, record, view.unreadable));
    else if (record.topic === accounts) setOrDelete(view.accounts, key, value as AccountRow | null);
    else if (record.topic === holds) {
      // Only the from tasks' hold rows ("h" keys); marks and the expiry index are the tasks' own bookkeeping.
      if (key.startsWith('h')) setOrDelete(view.holds, key, value as { status: HoldStatus } | null);
    } else {
      // Segmented layout (src/stores/segmented-store.ts): in-flight entries are pinned, {w, v} under "\u0002" + key.
      // Keyed by the physical key, so a pinned entry's tombstone (when it is decided) removes it here.
      const entry = logicalRecord(key, value).value as Record<string, unknown> | null;
      setOrDelete(
        view.inFlightTransfers,
        key,
        entry?.['status'] === 'in_flight' ? (entry as unknown as TransferEntry) : null,
      );
    }
  });
  return view;
}

/** True when a restore would apply the record (verifies, or is on the operator's skip list: then false, silently). */
function authenticChangelogRecord(
  config: Config,
  store: string,
  record: FetchedRecord,
  unreadable: Difference[],
): boolean {
  if (config.recordAuth.changelogSkipRecords.has(recordCoordinate(record.topic, record.partition, record.offset)))
    return false;
  if (!config.clusterKeys) return true;
  const check = verifyChangelogRecord(config.clusterKeys, store, record, config.recordAuth.changelogAcceptUnsigned);
  if (check.ok) return true;
  unreadable.push({
    kind: 'unauthenticated_record',
    accountId: record.key?.toString('utf8'),
    message: `${where(record)}: changelog record does not verify (${check.reason}): forged, or written with another CLUSTER_SECRET; a restore stops at it`,
  });
  return false;
}

const MINOR_UNITS = /^-?\d+$/;

/** A balances row is checked before use: BigInt() of anything else would stop the whole run. */
function balanceRow(
  value: Record<string, unknown>,
  record: FetchedRecord,
  unreadable: Difference[],
): BalanceRow | null {
  const { balance, inFlight, pendingDebits, pendingCredits } = value;
  const minor = (v: unknown): v is string => typeof v === 'string' && MINOR_UNITS.test(v);
  const optional = (v: unknown) => v === undefined || minor(v);
  if (minor(balance) && minor(inFlight) && optional(pendingDebits) && optional(pendingCredits))
    return {
      balance,
      inFlight,
      ...(pendingDebits === undefined ? {} : { pendingDebits: pendingDebits as string }),
      ...(pendingCredits === undefined ? {} : { pendingCredits: pendingCredits as string }),
    };
  unreadable.push({
    kind: 'unreadable_record',
    accountId: record.key?.toString('utf8'),
    message: `${where(record)}: balances row without integer balance and inFlight (and pending amounts, when present)`,
  });
  return null;
}

/** Outcome totals per account and currency, and one status per transferId. */
export async function readOutcomes(config: Config, reader: TopicReader): Promise<OutcomeView> {
  const view: OutcomeView = {
    deltas: new Map(),
    currencyOf: new Map(),
    deposits: new Map(),
    withdrawals: new Map(),
    records: new Map(),
    decisions: new Map(),
    holds: new Map(),
    completed: 0,
    failed: 0,
    conflicts: 0,
    unreadable: [],
    truncated: [],
  };
  const { completed, failed } = config.topics;
  for (const [key, first] of await reader.offsets([completed, failed], 'earliest')) {
    if (first > 0n)
      view.truncated.push({
        kind: 'outcomes_truncated',
        message: `${key.replace('\u0000', '-')} starts at offset ${first}: outcome totals are incomplete (retention)`,
      });
  }
  await reader.readAll([completed, failed], (record) => {
    const value = parseJson(record, view.unreadable);
    if (!value) return;
    if (record.topic === completed) addCompleted(view, value, record);
    else addFailed(view, value, record);
  });
  return view;
}

function addCompleted(view: OutcomeView, value: Record<string, unknown>, record: FetchedRecord): void {
  const { transferId, type, currency, amount } = value;
  const digits = typeof currency === 'string' ? currencyDigits(currency) : undefined;
  const parsed = typeof amount === 'string' && digits !== undefined ? parseMoney(amount, digits) : undefined;
  if (typeof transferId !== 'string' || typeof currency !== 'string' || !parsed?.ok) {
    view.unreadable.push({
      kind: 'unreadable_record',
      message: `${where(record)}: completed outcome without a transferId, currency or valid amount`,
    });
    return;
  }
  view.completed++;
  // A hold's expiry is answered under the hold's own id (no command of its own): not a second decision.
  addRecord(view, record, value, transferId, 'COMPLETED', type === 'hold_expiry');
  const move = (account: unknown, delta: bigint) => {
    if (typeof account !== 'string') return;
    view.deltas.set(account, (view.deltas.get(account) ?? 0n) + delta);
    view.currencyOf.set(account, currency);
  };
  if (isHoldOutcome(type, value.status)) addHoldOutcome(view, value, parsed.minor, record);
  if (type === 'deposit') addTo(view.deposits, currency, parsed.minor);
  if (type === 'withdrawal') addTo(view.withdrawals, currency, parsed.minor);
  if (type === 'deposit') move(value.accountId, parsed.minor);
  else if (type === 'withdrawal') move(value.accountId, -parsed.minor);
  else if (type === 'transfer' || type === 'post_hold') {
    move(value.from, -parsed.minor);
    move(value.to, parsed.minor);
  }
}

function addFailed(view: OutcomeView, value: Record<string, unknown>, record: FetchedRecord): void {
  const { transferId, code } = value;
  if (typeof transferId !== 'string' || typeof code !== 'string') {
    view.unreadable.push({
      kind: 'unreadable_record',
      message: `${where(record)}: failed outcome without a transferId or code`,
    });
    return;
  }
  // A conflicting duplicate is answered under the original transferId; the original outcome stands.
  if (code === IDEMPOTENCY_CONFLICT) {
    view.conflicts++;
    return;
  }
  view.failed++;
  addRecord(view, record, value, transferId, 'FAILED', code === 'malformed');
}

/**
 * One outcome record by position, and its decision under (account, transferId) for the duplicate check.
 * A malformed failure is left out of that check: the processor deduplicates it under the record key,
 * which the outcome does not carry and which may differ from the account its body names.
 */
function addRecord(
  view: OutcomeView,
  record: FetchedRecord,
  value: Record<string, unknown>,
  transferId: string,
  status: 'COMPLETED' | 'FAILED',
  malformed = false,
): void {
  const account =
    typeof value.accountId === 'string' ? value.accountId : typeof value.from === 'string' ? value.from : null;
  view.records.set(positionKey(record.topic, record.partition, record.offset), {
    transferId,
    account,
    status,
    where: where(record),
  });
  if (malformed) return;
  const decidedAtMs = typeof value.completedAt === 'string' ? Date.parse(value.completedAt) : Number.NaN;
  const key = decisionKey(account, transferId);
  const times = view.decisions.get(key);
  if (times) times.push(decidedAtMs);
  else view.decisions.set(key, [decidedAtMs]);
}

function decisionKey(account: string | null, transferId: string): string {
  return JSON.stringify([account, transferId]);
}

function parseJson(record: FetchedRecord, unreadable: Difference[]): Record<string, unknown> | null | undefined {
  if (record.value === null) return null;
  try {
    const value: unknown = JSON.parse(record.value.toString('utf8'));
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // Reported below.
  }
  unreadable.push({ kind: 'unreadable_record', message: `${where(record)}: not a JSON object` });
  return undefined;
}

function setOrDelete<T>(map: Map<string, T>, key: string, value: T | null): void {
  if (value === null) map.delete(key);
  else map.set(key, value);
}
