// Test harness for the bank topology on the TopologyTestDriver: typed senders and readers.
import { buildBankTopology, type BankTopologyOptions } from '../../../src/bank/topology.ts';
import { type TestDriverOptions, type TestOutputTopic, TopologyTestDriver } from '../../../src/topology/test-driver.ts';
import { BankProcessor } from '../../../src/bank/processor.ts';
import { logicalEntries } from '../../../src/stores/segmented-store.ts';
import { record } from '../../../src/topology/record.ts';
import type { Headers, KeyValueStore, ProcessorContext, RangeOptions, Serde } from '../../../src/topology/types.ts';

export const TOPICS = {
  input: 'transaction_initiated',
  credits: 'bankstream-credits',
  completed: 'transaction_completed',
  failed: 'transaction_failed',
  audit: 'audit_log',
  dlq: 'transaction_initiated.dlq',
};

export const DAY_MS = 86_400_000;
export const START_MS = Date.UTC(2026, 0, 1);

const jsonSerde: Serde<Record<string, string>> = {
  serialize: (value) => Buffer.from(JSON.stringify(value), 'utf8'),
  deserialize: (bytes) => JSON.parse(bytes.toString('utf8')) as Record<string, string>,
};

export interface OutputRow {
  key: string | null;
  value: Record<string, string>;
}

export interface BalanceRow {
  balance: string;
  inFlight: string;
  pendingDebits?: string;
  pendingCredits?: string;
}

export class Bank {
  readonly driver: TopologyTestDriver;
  readonly #outputs: Record<'completed' | 'failed' | 'audit', TestOutputTopic<string, Record<string, string>>>;
  readonly #dlq: TestOutputTopic<Buffer, Buffer>;

  readonly #options: Partial<BankTopologyOptions>;
  readonly #partitions: number;
  readonly #driverOptions: TestDriverOptions;

  /**
   * `driverOptions` go to the TopologyTestDriver; `restoreFrom`: a bank whose changelogs this one
   * restores from, at its clock (a restart elsewhere).
   */
  constructor(
    options: Partial<BankTopologyOptions> = {},
    partitions = 4,
    driverOptions: TestDriverOptions = {},
    restoreFrom?: Bank,
  ) {
    this.#options = options;
    this.#partitions = partitions;
    this.#driverOptions = driverOptions;
    let clock = (): number => START_MS;
    const topology = buildBankTopology({
      topics: TOPICS,
      dedupRetentionMs: 7 * DAY_MS,
      restoreClock: () => clock(),
      ...options,
    });
    const startWallClockMs = restoreFrom?.driver.nowMs() ?? START_MS;
    clock = () => startWallClockMs;
    const changelog =
      restoreFrom === undefined ? {} : { changelog: (topic: string) => restoreFrom.driver.records(topic) };
    this.driver = new TopologyTestDriver(topology, { partitions, startWallClockMs, ...driverOptions, ...changelog });
    const driver = this.driver;
    clock = () => driver.nowMs();
    const output = (topic: string) =>
      this.driver.createOutputTopic<string, Record<string, string>>(topic, { valueSerde: jsonSerde });
    this.#outputs = { completed: output(TOPICS.completed), failed: output(TOPICS.failed), audit: output(TOPICS.audit) };
    const raw: Serde<Buffer> = { serialize: (b) => b, deserialize: (b) => b };
    this.#dlq = this.driver.createOutputTopic<Buffer, Buffer>(TOPICS.dlq, { keySerde: raw, valueSerde: raw });
  }

  /** Sends a command keyed by the account it acts on (accountId, or from for a transfer) unless `key` is given. */
  async send(
    command: Record<string, unknown>,
    options: { key?: string | null; timestamp?: number; partition?: number } = {},
  ): Promise<void> {
    const key =
      options.key !== undefined
        ? options.key
        : ((command['from'] !== undefined && command['type'] !== 'deposit' && command['type'] !== 'withdrawal'
            ? command['from']
            : command['accountId']) as string);
    await this.sendRaw(key, Buffer.from(JSON.stringify(command), 'utf8'), options);
  }

  async sendRaw(
    key: string | null,
    value: Buffer | null,
    options: { timestamp?: number; partition?: number; headers?: Headers } = {},
  ): Promise<void> {
    const keyBytes = key === null ? null : Buffer.from(key, 'utf8');
    const partition = options.partition ?? (key === null ? 0 : this.driver.partitionOf(key));
    await this.driver.pipeRaw(TOPICS.input, partition, keyBytes, value, options.timestamp, options.headers ?? {});
  }

  async open(accountId: string, currency = 'EUR', overdraftLimit?: string): Promise<void> {
    await this.send({
      type: 'open_account',
      accountId,
      ownerId: `owner-${accountId}`,
      currency,
      ...(overdraftLimit === undefined ? {} : { overdraftLimit }),
    });
  }

  async deposit(transferId: string, accountId: string, amount: string, currency = 'EUR'): Promise<void> {
    await this.send({ type: 'deposit', transferId, accountId, amount, currency });
  }

  completed(): OutputRow[] {
    return this.#outputs.completed.readRecordsToList().map((r) => ({ key: r.key, value: r.value! }));
  }

  failed(): OutputRow[] {
    return this.#outputs.failed.readRecordsToList().map((r) => ({ key: r.key, value: r.value! }));
  }

  audit(): OutputRow[] {
    return this.#outputs.audit.readRecordsToList().map((r) => ({ key: r.key, value: r.value! }));
  }

  dlq() {
    return this.#dlq.readRecordsToList();
  }

  /** Drains every output topic, so the next read sees only what follows. */
  clear(): void {
    this.completed();
    this.failed();
    this.audit();
    this.dlq();
  }

  async balances(): Promise<Map<string, BalanceRow>> {
    return this.driver.storeEntries<BalanceRow>('balances');
  }
  /** A new bank restored from this one's changelogs, at this one's clock: a restart after losing the local state. */
  restart(): Bank {
    this.driver.close();
    return new Bank(this.#options, this.#partitions, this.#driverOptions, this);
  }

  /** The transfers store as the bank sees it: logical keys (dedupKey), newest copy, pinned values unwrapped. */
  async dedupEntries<V = Record<string, unknown>>(): Promise<Map<string, V>> {
    return logicalEntries<V>(await this.driver.storeEntries('transfers'));
  }

  async balance(accountId: string): Promise<BalanceRow | undefined> {
    return (await this.balances()).get(accountId);
  }
}

/** `count` account ids with `prefix`, each in a partition accepted by `accept` (given the ids chosen so far). */
export function accountIds(
  driver: TopologyTestDriver,
  prefix: string,
  count: number,
  accept: (partition: number, chosen: string[]) => boolean,
): string[] {
  const chosen: string[] = [];
  for (let i = 0; chosen.length < count && i < 10_000; i++) {
    const id = `${prefix}-${i}`;
    if (accept(driver.partitionOf(id), chosen)) chosen.push(id);
  }
  if (chosen.length < count) throw new Error(`could not find ${count} account ids for ${prefix}`);
  return chosen;
}

/** Two accounts in the same partition (same task). */
export function sameTaskPair(driver: TopologyTestDriver, prefix: string): [string, string] {
  const ids = accountIds(driver, prefix, 2, (p, chosen) => chosen.length === 0 || driver.partitionOf(chosen[0]!) === p);
  return [ids[0]!, ids[1]!];
}

/** Two accounts in different partitions (different tasks). */
export function crossTaskPair(driver: TopologyTestDriver, prefix: string): [string, string] {
  const ids = accountIds(driver, prefix, 2, (p, chosen) => chosen.length === 0 || driver.partitionOf(chosen[0]!) !== p);
  return [ids[0]!, ids[1]!];
}

/** A Map-backed KeyValueStore for driving a BankProcessor by hand (no prefetch checks). */
export class MapStore<V> implements KeyValueStore<V> {
  readonly name: string;
  readonly rows = new Map<string, V>();

  constructor(name: string) {
    this.name = name;
  }

  get(key: string): V | undefined {
    return this.rows.get(key);
  }

  put(key: string, value: V): void {
    this.rows.set(key, value);
  }

  delete(key: string): void {
    this.rows.delete(key);
  }

  async purgeRange(
    gte: string,
    lt: string,
    limitEntries: number,
  ): Promise<{ purged: number; lastKey: string | undefined }> {
    const keys = [...this.rows.keys()]
      .sort()
      .filter((k) => k >= gte && k < lt)
      .slice(0, limitEntries);
    for (const key of keys) this.rows.delete(key);
    return { purged: keys.length, lastKey: keys.at(-1) };
  }

  /** The entries as the bank sees them (segment and pinned prefixes taken off). */
  logical(): Map<string, V> {
    return logicalEntries<V>(this.rows);
  }

  async *range(options: RangeOptions = {}): AsyncIterable<[string, V]> {
    const keys = [...this.rows.keys()]
      .sort()
      .filter((k) => (options.gte === undefined || k >= options.gte) && (options.lt === undefined || k < options.lt));
    for (const key of keys.slice(0, options.limit ?? keys.length)) yield [key, this.rows.get(key)!];
  }
}

export interface Forwarded {
  child: string;
  key: unknown;
  value: unknown;
  headers: Headers;
}

/**
 * One task of the bank processor driven by hand, with a fake context: legs are captured instead of
 * delivered, so a test can look at a transfer while it is in flight.
 */
export class ManualTask {
  readonly processor: BankProcessor;
  readonly stores = {
    accounts: new MapStore<unknown>('accounts'),
    balances: new MapStore<unknown>('balances'),
    transfers: new MapStore<unknown>('transfers'),
    holds: new MapStore<unknown>('holds'),
  };
  readonly forwarded: Forwarded[] = [];
  nowMs = START_MS;
  punctuator: ((timestampMs: number) => void | Promise<void>) | undefined;
  readonly punctuators: Array<(timestampMs: number) => void | Promise<void>> = [];
  #offset = 0n;

  /** `owner(accountId)` says which partition owns an account; this task is partition 0. */
  constructor(owner: (accountId: string) => number, options: { dedupRetentionMs?: number } = {}) {
    this.processor = new BankProcessor({
      dedupRetentionMs: options.dedupRetentionMs ?? DAY_MS,
      punctuateIntervalMs: 60_000,
    });
    const stores = this.stores as Record<string, MapStore<unknown>>;
    const context: ProcessorContext = {
      applicationId: 'test',
      taskId: '0',
      partition: 0,
      partitions: 2,
      partitionForKey: owner,
      recordMetadata: () => ({ topic: 'manual', partition: 0, offset: this.#offset }),
      getStore: <V>(name: string) => stores[name] as unknown as KeyValueStore<V>,
      forward: (rec, child) =>
        void this.forwarded.push({ child: child ?? '', key: rec.key, value: rec.value, headers: rec.headers }),
      currentStreamTimeMs: () => this.nowMs,
      currentSystemTimeMs: () => this.nowMs,
      schedule: (_interval, _type, punctuator) => {
        // The first one is the dedup expiry; the others (hold expiry) are kept in `punctuators`.
        this.punctuator ??= punctuator;
        this.punctuators.push(punctuator);
        return { cancel: () => undefined };
      },
    };
    this.processor.init(context);
  }

  command(value: Record<string, unknown>): void {
    const key = (typeof value['from'] === 'string' ? value['from'] : value['accountId']) as string;
    this.#offset += 1n;
    this.processor.process(record(Buffer.from(key), Buffer.from(JSON.stringify(value)), this.nowMs));
  }

  leg(key: string, value: Record<string, unknown>): void {
    this.#offset += 1n;
    this.processor.process(record(Buffer.from(key), { legBytes: Buffer.from(JSON.stringify(value)) }, this.nowMs));
  }

  /** Forwarded records to `child` since the last call for that child. */
  take(child: string): Forwarded[] {
    const taken = this.forwarded.filter((f) => f.child === child);
    for (let i = this.forwarded.length - 1; i >= 0; i--)
      if (this.forwarded[i]!.child === child) this.forwarded.splice(i, 1);
    return taken;
  }
}
