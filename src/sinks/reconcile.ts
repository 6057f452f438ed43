// `bankstream reconcile`: for a quiet system, compares three views of every account and says
// where they differ.
//   stores    the processor's state, rebuilt by reading the balances, accounts and transfers
//             changelogs (read_committed, last value per key). That IS what a restoring task would
//             load, so it is exact and needs no running instance. Optionally also the HTTP API.
//   outcomes  the money each account must hold according to transaction_completed
//             (deposits − withdrawals ± transfers), read_committed.
//   postgres  accounts.balance, written by the sink.
// Then the invariants: per currency Σ balances = Σ completed deposits − Σ completed withdrawals; no
// transfer in flight; Postgres `transactions` equals the outcome topics one for one (matched by the
// outcome record's topic, partition and offset: a transferId is unique per acted-on account only, and
// may be decided again after the dedup retention); no unresolved sink reject (each is a record
// Postgres does not show, named in the report).
//
// "Quiet" is checked, not assumed: no open transaction on any topic read, the processor has
// committed past every input and credits record, and the sink has stored offsets past every outcome.
// Comparing a moving system would report differences that are only lag.
import { kafkaConnectionOptions } from '../kafka/security.ts';
import { connectPg } from './pg-connection.ts';
import { type Consumer, ListOffsetTimestamps } from '@platformatic/kafka';
import type pg from 'pg';
import { currencyDigits, formatMoney, parseMoney } from '../bank/money.ts';
import { type AccountRow, type BalanceRow, type TransferEntry, transferIdOfDedupKey } from '../bank/stores.ts';
import { logicalRecord } from '../stores/segmented-store.ts';
import { type Config, changelogTopic } from '../config/config.ts';
import type { Logger } from '../config/logger.ts';
import { fetchStableOffsets } from '../kafka/committed-offsets.ts';
import { type Fetcher, type FetchedRecord, tpKey } from '../kafka/fetcher.ts';
import { createReader } from '../kafka/reader.ts';
import { recordCoordinate, verifyChangelogRecord } from '../runtime/record-mac.ts';
import { IDEMPOTENCY_CONFLICT, storableText } from './records.ts';

export interface ReconcileOptions {
  /** Base URL of the HTTP API; when set, every account is also read through GET /v1/accounts/:id. */
  apiUrl?: string;
  /** Bearer token for the API (a teller or admin token reads any account). */
  apiToken?: string;
  /** How long to wait for the system to become quiet before comparing (default 30 000 ms; 0 checks once). */
  quietTimeoutMs?: number;
  /** Differences and differing accounts kept in the report; all of them are counted (default 1 000). */
  differencesMax?: number;
  /** Concurrent API requests (default 8). */
  apiConcurrency?: number;
  logger?: Logger;
}

export type DifferenceKind =
  | 'not_quiet'
  | 'balance_mismatch'
  | 'status_mismatch'
  | 'missing_account'
  | 'in_flight'
  | 'invariant'
  | 'duplicate_outcome'
  | 'transaction_missing'
  | 'transaction_extra'
  | 'transaction_status'
  | 'conflicts_mismatch'
  | 'sink_reject'
  | 'unreadable_record'
  /** A changelog record without a valid MAC (src/runtime/record-mac.ts): forged, left out of the stores view. */
  | 'unauthenticated_record'
  | 'outcomes_truncated'
  | 'api_error';

export interface Difference {
  kind: DifferenceKind;
  accountId?: string;
  transferId?: string;
  message: string;
}

/** One account as each view sees it; money as decimal strings in the account's currency, null where the view has no row. */
export interface AccountLine {
  accountId: string;
  currency: string | null;
  stores: string | null;
  inFlight: string | null;
  outcomes: string;
  postgres: string | null;
  /** undefined when the API was not asked. */
  api?: string | null;
  storeStatus: string | null;
  postgresStatus: string | null;
}

export interface CurrencyTotal {
  currency: string;
  balances: string;
  deposits: string;
  withdrawals: string;
  ok: boolean;
}

export interface QuietState {
  quiet: boolean;
  waitedMs: number;
  /** Input and credits records the processor has not committed past. */
  processorPending: number;
  /** Outcome and audit records the sink has not stored offsets past. */
  sinkPending: number;
  /** "topic-partition" of every partition with an open transaction. */
  openTransactions: string[];
}

export interface ReconcileReport {
  ok: boolean;
  appId: string;
  checkedAt: string;
  quiet: QuietState;
  counts: {
    storeAccounts: number;
    postgresAccounts: number;
    apiAccounts: number | null;
    completed: number;
    failed: number;
    conflicts: number;
    postgresTransactions: number;
    postgresConflicts: number;
    /** Unresolved sink_rejects rows of the outcome and audit topics. */
    sinkRejects: number;
    inFlightAccounts: number;
    inFlightTransfers: number;
  };
  currencies: CurrencyTotal[];
  accountsCompared: number;
  differingAccounts: AccountLine[];
  differences: Difference[];
  differencesTotal: number;
}

/** Reads every view, compares them and returns the report; throws only when a view cannot be read. */
export async function reconcile(config: Config, options: ReconcileOptions = {}): Promise<ReconcileReport> {
  const reader = new TopicReader(config);
  // The host list's session rule (target_session_attrs): with read-write, the primary of the moment.
  const db = await connectPg(config.databaseUrl, config.postgresTls, {
    client: { application_name: `${config.appId}-reconcile`, connectionTimeoutMillis: 10_000 },
  });
  try {
    const before = await waitQuiet(config, reader, db, options.quietTimeoutMs ?? 30_000, options.logger);
    const postgres = await readPostgres(db, [config.topics.completed, config.topics.failed, config.topics.audit]);
    const stores = await readStores(config, reader);
    const outcomes = await readOutcomes(config, reader);
    const api = options.apiUrl ? await readApi(options, accountIds(stores, outcomes, postgres)) : null;
    // Checked again after reading: anything that moved meanwhile makes the comparison unreliable.
    const after = before.quiet ? { ...(await quietState(config, reader, db)), waitedMs: before.waitedMs } : before;
    return buildReport(config, { quiet: after, stores, outcomes, postgres, api }, options.differencesMax ?? 1_000);
  } finally {
    await db.end().catch(() => undefined);
    await reader.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Kafka: a consumer that never joins a group, reading explicit ranges through the runtime's Fetcher
// (the Java read_committed rule, unlike the client's own filter).

interface Range {
  topic: string;
  partition: number;
  offset: bigint;
  end: bigint;
}

type Offsets = Map<string, bigint>;

const FETCH_IDLE_ROUNDS_MAX = 200;

class TopicReader {
  readonly consumer: Consumer;
  readonly #fetcher: Fetcher;
  readonly #partitions = new Map<string, number>();

  constructor(config: Config) {
    // groupId = the application id, so fetchStableOffsets reads the processor's committed offsets.
    // The consumer never joins: closing it sends no LeaveGroup and disturbs no member.
    const reader = createReader({
      clientId: `${config.appId}-reconcile`,
      groupId: config.appId,
      bootstrapBrokers: config.kafkaBrokers,
      security: kafkaConnectionOptions(config.kafkaSecurity, config.kafkaBrokers),
      fetch: { maxWaitMs: 100, minBytes: 1, maxBytes: 16 * 1024 * 1024, partitionMaxBytes: 4 * 1024 * 1024 },
    });
    this.consumer = reader.consumer;
    this.#fetcher = reader.fetcher;
  }

  async partitionsOf(topics: string[]): Promise<Map<string, number>> {
    const missing = topics.filter((t) => !this.#partitions.has(t));
    if (missing.length > 0) {
      const metadata = await this.consumer.metadata({ topics: missing }).catch((error: unknown) => {
        throw new Error(
          `cannot read the metadata of ${missing.join(', ')} (run "bankstream topics create" if they are missing)`,
          { cause: error },
        );
      });
      for (const topic of missing) {
        const count = metadata.topics.get(topic)?.partitionsCount;
        if (count === undefined) throw new Error(`topic ${topic} does not exist (run "bankstream topics create")`);
        this.#partitions.set(topic, count);
      }
    }
    return new Map(topics.map((t) => [t, this.#partitions.get(t) ?? 0]));
  }

  /** Offsets per "topic\0partition": EARLIEST, the high watermark, or the last stable offset. */
  async offsets(topics: string[], which: 'earliest' | 'high' | 'stable'): Promise<Offsets> {
    await this.partitionsOf(topics);
    const listed = await this.consumer.listOffsets({
      topics,
      timestamp: which === 'earliest' ? ListOffsetTimestamps.EARLIEST : ListOffsetTimestamps.LATEST,
      isolationLevel: which === 'stable' ? 1 : 0,
    });
    const out: Offsets = new Map();
    for (const [topic, list] of listed) list.forEach((offset, partition) => out.set(tpKey(topic, partition), offset));
    return out;
  }

  /** Calls `onRecord` for every committed record of the ranges, in offset order per partition. */
  async read(ranges: Range[], onRecord: (record: FetchedRecord) => void): Promise<void> {
    let idleRounds = 0;
    for (;;) {
      const active = ranges.filter((r) => r.offset < r.end);
      if (active.length === 0) return;
      const byKey = new Map(active.map((r) => [tpKey(r.topic, r.partition), r]));
      let progressed = false;
      for (const part of await this.#fetcher.fetch(active)) {
        const range = byKey.get(tpKey(part.topic, part.partition));
        if (!range || part.nextOffset <= range.offset) continue;
        for (const record of part.records) if (record.offset < range.end) onRecord(record);
        range.offset = part.nextOffset;
        progressed = true;
      }
      // A bound on the loop: a partition that stops advancing (a broker problem) fails the run.
      idleRounds = progressed ? 0 : idleRounds + 1;
      if (idleRounds > FETCH_IDLE_ROUNDS_MAX)
        throw new Error(`reading ${active.map((r) => `${r.topic}-${r.partition}`).join(', ')} made no progress`);
    }
  }

  /** Every committed record of the topics, from the log start to the last stable offset. */
  async readAll(topics: string[], onRecord: (record: FetchedRecord) => void): Promise<void> {
    const [start, end] = [await this.offsets(topics, 'earliest'), await this.offsets(topics, 'stable')];
    await this.read(rangesBetween(start, end, start), onRecord);
  }

  async close(): Promise<void> {
    await this.consumer.close(true).catch(() => undefined);
  }
}

/** Ranges from `from` (or the log start) to `end`, for every partition listed in `end`. */
function rangesBetween(from: Offsets, end: Offsets, logStart: Offsets): Range[] {
  return [...end].map(([key, stop]) => {
    const [topic = '', partition = '0'] = key.split('\u0000');
    const start = maxBigint(from.get(key) ?? 0n, logStart.get(key) ?? 0n);
    return { topic, partition: Number(partition), offset: start, end: stop };
  });
}

// ---------------------------------------------------------------------------------------------
// Quiet: no open transactions, nothing left for the processor or the sink to read.

const QUIET_POLL_MS = 250;

async function waitQuiet(
  config: Config,
  reader: TopicReader,
  db: pg.Client,
  timeoutMs: number,
  logger?: Logger,
): Promise<QuietState> {
  const started = Date.now();
  for (;;) {
    const state = await quietState(config, reader, db);
    state.waitedMs = Date.now() - started;
    if (state.quiet || state.waitedMs >= timeoutMs) return state;
    logger?.info({ ...state }, 'waiting for the system to become quiet');
    await new Promise((resolve) => setTimeout(resolve, QUIET_POLL_MS));
  }
}

async function quietState(config: Config, reader: TopicReader, db: pg.Client): Promise<QuietState> {
  const { topics } = config;
  const processed = [topics.input, topics.credits];
  const sunk = [topics.completed, topics.failed, topics.audit];
  const all = [...processed, ...sunk, ...storeTopics(config)];
  const [start, high, stable] = [
    await reader.offsets(all, 'earliest'),
    await reader.offsets(all, 'high'),
    await reader.offsets(all, 'stable'),
  ];
  const openTransactions = [...high]
    .filter(([key, end]) => (stable.get(key) ?? end) < end)
    .map(([key]) => key.replace('\u0000', '-'));
  const committed = await fetchStableOffsets(
    reader.consumer,
    new Map([...(await reader.partitionsOf(processed))].map(([t, n]) => [t, range(n)])),
    {
      clientId: `${config.appId}-reconcile-offsets`,
      connection: {},
      timeoutMs: 15_000,
      retryDelayMs: 100,
    },
  );
  const stored = await sinkOffsets(db, config.sinkGroupId);
  // Records, not offsets: transaction markers occupy offsets that no consumer ever "processes".
  const processorPending = await countRecords(reader, rangesBetween(committed, only(stable, processed), start));
  const sinkPending = await countRecords(reader, rangesBetween(stored, only(stable, sunk), start));
  const quiet = openTransactions.length === 0 && processorPending === 0 && sinkPending === 0;
  return { quiet, waitedMs: 0, processorPending, sinkPending, openTransactions };
}

async function countRecords(reader: TopicReader, ranges: Range[]): Promise<number> {
  let count = 0;
  await reader.read(ranges, () => count++);
  return count;
}

async function sinkOffsets(db: pg.Client, groupId: string): Promise<Offsets> {
  const { rows } = await db.query<{ topic: string; partition: number; next_offset: string }>(
    'SELECT topic, partition, next_offset FROM sink_offsets WHERE group_id = $1',
    [groupId],
  );
  return new Map(rows.map((row) => [tpKey(row.topic, row.partition), BigInt(row.next_offset)]));
}

function storeTopics(config: Config): string[] {
  const { balances, accounts, transfers } = changelogs(config);
  return [balances, accounts, transfers];
}

/** The changelogs a restoring task reads; `<appId>-<store>-changelog`, as the engine names them. */
function changelogs(config: Config): { balances: string; accounts: string; transfers: string } {
  return {
    balances: changelogTopic(config.appId, 'balances'),
    accounts: changelogTopic(config.appId, 'accounts'),
    transfers: changelogTopic(config.appId, 'transfers'),
  };
}

// ---------------------------------------------------------------------------------------------
// The three views.

interface StoreView {
  accounts: Map<string, AccountRow>;
  balances: Map<string, BalanceRow>;
  inFlightTransfers: Map<string, TransferEntry>;
  unreadable: Difference[];
}

interface OutcomeView {
  /** Net money per account, in minor units. */
  deltas: Map<string, bigint>;
  currencyOf: Map<string, string>;
  deposits: Map<string, bigint>;
  withdrawals: Map<string, bigint>;
  /** Every outcome record but conflicts, by position ("topic\0partition\0offset"). */
  records: Map<string, OutcomeRecord>;
  /** (acted-on account, transferId) → the decision times (epoch ms) of its outcomes. */
  decisions: Map<string, number[]>;
  completed: number;
  failed: number;
  conflicts: number;
  unreadable: Difference[];
  truncated: Difference[];
}

interface OutcomeRecord {
  transferId: string;
  /** The account whose task decided it (accountId, else from); null when the outcome names none. */
  account: string | null;
  status: 'COMPLETED' | 'FAILED';
  where: string;
}

interface SinkReject {
  where: string;
  key: string | null;
  error: string;
  rejectedAt: string;
}

interface PostgresAccount {
  currency: string | null;
  status: string;
  balance: string;
}

interface PostgresView {
  accounts: Map<string, PostgresAccount>;
  /** status by the row's source position ("topic\0partition\0offset"). */
  transactions: Map<string, { transferId: string; status: string }>;
  conflicts: number;
  rejects: SinkReject[];
}

type ApiView = Map<string, { balance: string | null; error?: string }>;

/** The stores as a restoring task would rebuild them: the last committed value per key. */
async function readStores(config: Config, reader: TopicReader): Promise<StoreView> {
  const view: StoreView = { accounts: new Map(), balances: new Map(), inFlightTransfers: new Map(), unreadable: [] };
  const { balances, accounts, transfers } = changelogs(config);
  const storeOf = new Map([
    [balances, 'balances'],
    [accounts, 'accounts'],
    [transfers, 'transfers'],
  ]);
  await reader.readAll([balances, accounts, transfers], (record) => {
    const key = record.key?.toString('utf8');
    if (key === undefined) return;
    // What a restoring task would refuse is no part of the stores: reported, never counted.
    if (!authenticChangelogRecord(config, storeOf.get(record.topic)!, record, view.unreadable)) return;
    const value = parseJson(record, view.unreadable);
    if (value === undefined) return;
    if (record.topic === balances)
      setOrDelete(view.balances, key, value === null ? null : balanceRow(value, record, view.unreadable));
    else if (record.topic === accounts) setOrDelete(view.accounts, key, value as AccountRow | null);
    else {
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
  const { balance, inFlight } = value;
  if (
    typeof balance === 'string' &&
    typeof inFlight === 'string' &&
    MINOR_UNITS.test(balance) &&
    MINOR_UNITS.test(inFlight)
  )
    return { balance, inFlight };
  unreadable.push({
    kind: 'unreadable_record',
    accountId: record.key?.toString('utf8'),
    message: `${where(record)}: balances row without integer balance and inFlight`,
  });
  return null;
}

/** Outcome totals per account and currency, and one status per transferId. */
async function readOutcomes(config: Config, reader: TopicReader): Promise<OutcomeView> {
  const view: OutcomeView = {
    deltas: new Map(),
    currencyOf: new Map(),
    deposits: new Map(),
    withdrawals: new Map(),
    records: new Map(),
    decisions: new Map(),
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
  addRecord(view, record, value, transferId, 'COMPLETED');
  const move = (account: unknown, delta: bigint) => {
    if (typeof account !== 'string') return;
    view.deltas.set(account, (view.deltas.get(account) ?? 0n) + delta);
    view.currencyOf.set(account, currency);
  };
  if (type === 'deposit') addTo(view.deposits, currency, parsed.minor);
  if (type === 'withdrawal') addTo(view.withdrawals, currency, parsed.minor);
  if (type === 'deposit') move(value.accountId, parsed.minor);
  else if (type === 'withdrawal') move(value.accountId, -parsed.minor);
  else if (type === 'transfer') {
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

function positionKey(topic: string, partition: number, offset: bigint | string): string {
  return `${topic}\u0000${partition}\u0000${offset}`;
}

function decisionKey(account: string | null, transferId: string): string {
  return JSON.stringify([account, transferId]);
}

/** One REPEATABLE READ snapshot, so the queries see the same committed state. */
async function readPostgres(db: pg.Client, sinkTopics: string[]): Promise<PostgresView> {
  await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    return await queryPostgres(db, sinkTopics);
  } finally {
    await db.query('COMMIT');
  }
}

async function queryPostgres(db: pg.Client, sinkTopics: string[]): Promise<PostgresView> {
  const accounts = await db.query<{ id: string; currency: string | null; status: string; balance: string }>(
    'SELECT id, currency, status, balance::text AS balance FROM accounts',
  );
  const transactions = await db.query<{
    transfer_id: string;
    status: string;
    source_topic: string;
    source_partition: number;
    source_offset: string;
  }>('SELECT transfer_id, status, source_topic, source_partition, source_offset::text FROM transactions');
  const conflicts = await db.query<{ n: string }>('SELECT count(*) AS n FROM transfer_conflicts');
  const rejects = await db.query<{
    source_topic: string;
    source_partition: number;
    source_offset: string;
    record_key: Buffer | null;
    error: string;
    rejected_at: Date;
  }>(
    `SELECT source_topic, source_partition, source_offset::text, record_key, error, rejected_at FROM sink_rejects
      WHERE resolved_at IS NULL AND source_topic = ANY($1::text[]) ORDER BY rejected_at, id`,
    [sinkTopics],
  );
  return {
    accounts: new Map(
      accounts.rows.map((row) => [row.id, { currency: row.currency, status: row.status, balance: row.balance }]),
    ),
    transactions: new Map(
      transactions.rows.map((row) => [
        positionKey(row.source_topic, row.source_partition, row.source_offset),
        { transferId: row.transfer_id, status: row.status },
      ]),
    ),
    conflicts: Number(conflicts.rows[0]?.n ?? 0),
    rejects: rejects.rows.map((row) => ({
      where: `${row.source_topic}-${row.source_partition}@${row.source_offset}`,
      key: row.record_key === null ? null : storableText(row.record_key.toString('utf8')).slice(0, 120),
      error: row.error,
      rejectedAt: row.rejected_at.toISOString(),
    })),
  };
}

const API_TIMEOUT_MS = 5_000;
const API_ATTEMPTS_MAX = 5;

/** Each account through GET /v1/accounts/:id, a bounded number at a time. */
async function readApi(options: ReconcileOptions, ids: string[]): Promise<ApiView> {
  const view: ApiView = new Map();
  const queue = [...ids];
  const worker = async () => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) view.set(id, await readApiAccount(options, id));
  };
  await Promise.all(Array.from({ length: Math.max(1, options.apiConcurrency ?? 8) }, worker));
  return view;
}

async function readApiAccount(
  options: ReconcileOptions,
  id: string,
): Promise<{ balance: string | null; error?: string }> {
  const url = new URL(
    `v1/accounts/${encodeURIComponent(id)}`,
    options.apiUrl!.endsWith('/') ? options.apiUrl : `${options.apiUrl}/`,
  );
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.apiToken) headers.authorization = `Bearer ${options.apiToken}`;
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await fetch(url, { headers, signal: AbortSignal.timeout(API_TIMEOUT_MS) });
      // 503 while a partition restores or moves: wait as told (bounded) and ask again.
      if (response.status === 503 && attempt < API_ATTEMPTS_MAX) {
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(Number(response.headers.get('retry-after') ?? 1) * 1000, 2_000)),
        );
        continue;
      }
      if (response.status === 404) return { balance: null };
      if (!response.ok) return { balance: null, error: `HTTP ${response.status}` };
      const body = (await response.json()) as { balance?: unknown };
      return typeof body.balance === 'string'
        ? { balance: body.balance }
        : { balance: null, error: 'no "balance" string in the answer' };
    } catch (error) {
      if (attempt >= API_ATTEMPTS_MAX)
        return { balance: null, error: error instanceof Error ? error.message : String(error) };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Comparison.

interface Views {
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

function buildReport(config: Config, views: Views, differencesMax: number): ReconcileReport {
  const findings = new Findings(differencesMax);
  const { quiet, stores, outcomes, postgres, api } = views;
  if (!quiet.quiet) findings.add({ kind: 'not_quiet', message: describeNotQuiet(quiet) });
  for (const d of [...stores.unreadable, ...outcomes.unreadable, ...outcomes.truncated]) findings.add(d);
  const ids = accountIds(stores, outcomes, postgres);
  for (const id of ids) compareAccount(id, views, findings);
  const currencies = compareCurrencies(stores, outcomes, findings);
  compareTransactions(outcomes, postgres, config.dedupRetentionMs, findings);
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

// ---------------------------------------------------------------------------------------------
// Small helpers.

function accountIds(stores: StoreView, outcomes: OutcomeView, postgres: PostgresView): string[] {
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

function addTo(map: Map<string, bigint>, key: string, amount: bigint): void {
  map.set(key, (map.get(key) ?? 0n) + amount);
}

function only(offsets: Offsets, topics: string[]): Offsets {
  return new Map([...offsets].filter(([key]) => topics.includes(key.split('\u0000')[0] ?? '')));
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function maxBigint(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function where(record: FetchedRecord): string {
  return `${record.topic}-${record.partition}@${record.offset}`;
}

function describeNotQuiet(quiet: QuietState): string {
  const parts = [`${quiet.processorPending} records not yet processed`, `${quiet.sinkPending} not yet sunk`];
  if (quiet.openTransactions.length > 0) parts.push(`open transactions on ${quiet.openTransactions.join(', ')}`);
  return `the system was not quiet after ${quiet.waitedMs} ms: ${parts.join(', ')}; differences below may be lag`;
}

// ---------------------------------------------------------------------------------------------
// The printed report.

const LINES_MAX = 50;

/** The report as text: a summary per view and check, then every differing account and difference (bounded). */
export function formatReport(report: ReconcileReport): string {
  const c = report.counts;
  const mark = (ok: boolean) => (ok ? 'ok' : 'DIFFERS');
  const { quiet } = report;
  const lines = [
    `bankstream reconcile — app ${report.appId}, ${report.checkedAt}`,
    `  quiet         ${quiet.quiet ? 'yes' : 'NO'} (processor ${quiet.processorPending} pending, sink ${quiet.sinkPending} pending, ${quiet.openTransactions.length} open transactions; waited ${quiet.waitedMs} ms)`,
    `  stores        ${c.storeAccounts} accounts (from the changelogs)`,
    `  outcomes      ${c.completed} completed, ${c.failed} failed, ${c.conflicts} idempotency conflicts`,
    `  postgres      ${c.postgresAccounts} accounts, ${c.postgresTransactions} transactions, ${c.postgresConflicts} conflicts`,
    `  sink rejects  ${c.sinkRejects} unresolved  ${mark(c.sinkRejects === 0)}`,
    `  api           ${c.apiAccounts === null ? 'not checked (no --api-url)' : `${c.apiAccounts} accounts read`}`,
    ...report.currencies.map(
      (t) =>
        `  invariant     ${t.currency}: Σ balances ${t.balances} = Σ deposits ${t.deposits} − Σ withdrawals ${t.withdrawals}  ${mark(t.ok)}`,
    ),
    `  in flight     ${c.inFlightAccounts} accounts, ${c.inFlightTransfers} transfers  ${mark(c.inFlightAccounts === 0 && c.inFlightTransfers === 0)}`,
    `  transactions  ${c.completed + c.failed} outcomes in the topics, ${c.postgresTransactions} rows in Postgres  ${mark(!report.differences.some((d) => d.kind.startsWith('transaction_') || d.kind === 'duplicate_outcome'))}`,
    `  accounts      ${report.accountsCompared} compared, ${report.differingAccounts.length} differ`,
    ...report.differingAccounts.slice(0, LINES_MAX).map(formatAccountLine),
  ];
  if (report.differencesTotal > 0) {
    lines.push(`  differences   ${report.differencesTotal}`);
    for (const d of report.differences.slice(0, LINES_MAX)) lines.push(`    ${d.kind.padEnd(20)} ${d.message}`);
    if (report.differencesTotal > LINES_MAX) lines.push(`    … and ${report.differencesTotal - LINES_MAX} more`);
  }
  const accounts = [...new Set(report.differences.flatMap((d) => (d.accountId ? [d.accountId] : [])))];
  lines.push(
    report.ok
      ? 'OK: the stores, the outcome topics and Postgres agree'
      : `FAILED: ${report.differencesTotal} difference(s)${accounts.length > 0 ? `; accounts: ${accounts.slice(0, LINES_MAX).join(', ')}` : ''}`,
  );
  return lines.join('\n');
}

function formatAccountLine(line: AccountLine): string {
  const api = line.api === undefined ? '' : `, api ${line.api ?? '-'}`;
  const status =
    line.storeStatus === line.postgresStatus
      ? (line.storeStatus ?? '-')
      : `${line.storeStatus ?? '-'}/${line.postgresStatus ?? '-'}`;
  return `    ${line.accountId} ${line.currency ?? '???'} ${status}: stores ${line.stores ?? '-'} (in flight ${line.inFlight ?? '-'}), outcomes ${line.outcomes}, postgres ${line.postgres ?? '-'}${api}`;
}
