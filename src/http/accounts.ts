// Interactive queries of one account: answered from the owning task's stores when this instance runs the
// account's partition, otherwise proxied to the owner named by the instance directory (one hop at most:
// a forwarded request is never forwarded again). 503 + Retry-After while the partition is restoring,
// unowned or moving. Reads are committed state only (readCommitted), with the store positions they saw.
// Asked with allowStale, an instance that keeps a standby of the partition answers from the standby's
// stores (maybe behind: the lag in records is in the body and a header) rather than proxying or a 503;
// one that keeps none asks the owner, and when the owner does not answer or answers 503 (it died, it is
// restoring), an instance the directory names as keeping a standby of the partition.
import { type AccountRow, type BalanceRow } from '../bank/stores.ts';
import { currencyDigits, formatMoney } from '../bank/money.ts';
import { type Config } from '../config/config.ts';
import { partitionForKey } from '../kafka/partitioner.ts';
import { type KafkaStreams } from '../runtime/kafka-streams.ts';
import { type TaskStore } from '../stores/types.ts';
import { ApiError, PROBLEM_CODES, type ProblemCode, codeForStatus, unavailable } from './errors.ts';
import { type InstanceDirectory, type Owner } from './instances.ts';
import { type Metrics } from './metrics.ts';

/** Set on proxied requests; an instance receiving it answers locally or 503, never proxies again. */
export const FORWARDED_HEADER = 'X-Bankstream-Forwarded';
export const INSTANCE_HEADER = 'X-Bankstream-Instance';
export const VIA_HEADER = 'X-Bankstream-Proxied-Via';
/** On a stale read: changelog records the standby had not applied yet when it answered. */
export const STALE_LAG_HEADER = 'X-Bankstream-Standby-Lag';
const PROXY_RESPONSE_BYTES_MAX = 64 * 1024;
const PASSED_HEADERS = ['content-type', 'retry-after', 'www-authenticate', INSTANCE_HEADER.toLowerCase(), STALE_LAG_HEADER.toLowerCase()];

export interface AccountView {
  accountId: string;
  ownerId: string;
  currency: string;
  status: 'open' | 'closed';
  balance: string;
  inFlight: string;
  overdraftLimit: string;
  openedAt: string;
  closedAt?: string;
  /** The changelog offsets the committed state read had reached, per store. */
  position: { partition: number; accounts: string | null; balances: string | null };
  servedBy: Owner;
  /** Only on a read from a standby (allowStale): how far behind the changelogs it was. */
  stale?: { standby: true; lagRecords: string };
}

export interface QueryRequest {
  authorization: string;
  requestId: string;
  /** The request came from another instance: do not proxy it again. */
  forwarded: boolean;
  /** The caller accepts a read from a standby, which may be behind the owner. */
  allowStale: boolean;
}

export type QueryResult =
  | { kind: 'local'; view: AccountView }
  | { kind: 'proxied'; owner: Owner; status: number; body: Buffer; headers: Record<string, string> };

export interface AccountQueriesOptions {
  config: Config;
  streams: KafkaStreams;
  directory: InstanceDirectory;
  metrics: Metrics;
  selfUrl: () => string;
}

export class AccountQueries {
  readonly #options: AccountQueriesOptions;

  constructor(options: AccountQueriesOptions) {
    this.#options = options;
  }

  async read(accountId: string, request: QueryRequest): Promise<QueryResult> {
    const { streams, directory, config } = this.#options;
    const partitions = streams.partitions;
    if (partitions === 0) throw unavailable('not_ready', 'the stream processor has not started yet');
    const partition = partitionForKey(accountId, partitions);
    if (streams.task(partition)) return { kind: 'local', view: await this.#readLocal(accountId, partition) };
    if (request.allowStale && streams.standby(partition)) return { kind: 'local', view: await this.#readStandby(accountId, partition) };
    if (request.forwarded) throw unavailable('partition_unavailable', `partition ${partition} is not running on ${config.instanceId} (forwarded request, not proxied again)`);
    const owner = directory.ownerOf(partition);
    const hasOwner = owner !== undefined && owner.instanceId !== config.instanceId;
    if (!request.allowStale) {
      if (!hasOwner) throw unavailable('partition_unavailable', `partition ${partition} has no running owner yet (restoring or moving)`);
      return this.#proxy(owner, accountId, request);
    }
    let failure: unknown = unavailable('partition_unavailable', `partition ${partition} has no running owner yet (restoring or moving) and no standby is known`);
    for (const target of [...(hasOwner ? [owner] : []), ...directory.standbyHoldersOf(partition)]) {
      try {
        const result = await this.#proxy(target, accountId, request);
        if (result.kind === 'proxied' && result.status === 503) {
          failure = remoteProblem(result);
          continue;
        }
        return result;
      } catch (error) {
        failure = error;
      }
    }
    throw failure;
  }

  /** The owner of an account as its owning task sees it; throws the owner's problem (403, 404, 503) as is. */
  async ownerOf(accountId: string, request: QueryRequest): Promise<string> {
    const result = await this.read(accountId, request);
    if (result.kind === 'local') return result.view.ownerId;
    if (result.status !== 200) throw remoteProblem(result);
    const body = JSON.parse(result.body.toString('utf8')) as { ownerId?: unknown };
    if (typeof body.ownerId !== 'string') throw new ApiError('bad_gateway', `instance ${result.owner.instanceId} answered without an ownerId`);
    return body.ownerId;
  }

  async #readLocal(accountId: string, partition: number): Promise<AccountView> {
    const { streams, config } = this.#options;
    const task = streams.task(partition)!;
    const usable = () => streams.state === 'RUNNING' && streams.task(partition) === task && task.state === 'RUNNING';
    const restoring = () => unavailable('partition_unavailable', `partition ${partition} is restoring or being reassigned on ${config.instanceId}`);
    return this.#readStores(accountId, partition, task.stores, usable, restoring);
  }

  /** A stale read from a standby's stores: they only ever hold committed changelog records. */
  async #readStandby(accountId: string, partition: number): Promise<AccountView> {
    const { streams, config } = this.#options;
    const standby = streams.standby(partition)!;
    const usable = () => streams.standby(partition)?.task === standby.task;
    const moving = () => unavailable('partition_unavailable', `the standby of partition ${partition} on ${config.instanceId} is being reassigned`);
    const view = await this.#readStores(accountId, partition, standby.task.stores, usable, moving);
    view.stale = { standby: true, lagRecords: standby.lagRecords.toString() };
    return view;
  }

  async #readStores(accountId: string, partition: number, stores: Map<string, TaskStore<unknown>>, usable: () => boolean, restoring: () => ApiError): Promise<AccountView> {
    const { config } = this.#options;
    if (!usable()) throw restoring();
    const accounts = stores.get('accounts') as TaskStore<AccountRow> | undefined;
    const balances = stores.get('balances') as TaskStore<BalanceRow> | undefined;
    if (!accounts || !balances) throw new Error('the topology has no accounts or balances store');
    let row: AccountRow | undefined;
    let balance: BalanceRow | undefined;
    try {
      [row, balance] = await Promise.all([accounts.readCommitted(accountId), balances.readCommitted(accountId)]);
    } catch (error) {
      // The task was closed under the read (a rebalance): not an error of the store, a move.
      if (!usable()) throw restoring();
      throw error;
    }
    if (!usable()) throw restoring();
    if (!row) throw new ApiError('account_not_found', `account ${accountId} does not exist`);
    const position = { partition, accounts: stringOrNull(accounts.position()), balances: stringOrNull(balances.position()) };
    return toView(accountId, row, balance, position, { instanceId: config.instanceId, url: this.#options.selfUrl() });
  }

  async #proxy(owner: Owner, accountId: string, request: QueryRequest): Promise<QueryResult> {
    const { config, metrics } = this.#options;
    const url = `${owner.url.replace(/\/+$/, '')}/v1/accounts/${encodeURIComponent(accountId)}${request.allowStale ? '?allowStale=true' : ''}`;
    let response: Response;
    let body: Buffer;
    try {
      response = await fetch(url, {
        method: 'GET',
        redirect: 'manual',
        signal: AbortSignal.timeout(config.http.proxyTimeoutMs),
        headers: { Authorization: request.authorization, 'X-Request-Id': request.requestId, [FORWARDED_HEADER]: '1', Accept: 'application/json' },
      });
      body = Buffer.from(await response.arrayBuffer());
    } catch (error) {
      metrics.proxied.inc({ result: 'unreachable' });
      // The owner is down or slow: most likely it is dying and the partition is about to move.
      throw unavailable('partition_unavailable', `the owner of the partition (${owner.instanceId}) did not answer`, 1, error);
    }
    if (body.length > PROXY_RESPONSE_BYTES_MAX) throw new ApiError('bad_gateway', `instance ${owner.instanceId} answered with an oversized body`);
    metrics.proxied.inc({ result: String(response.status) });
    const headers: Record<string, string> = {};
    for (const name of PASSED_HEADERS) {
      const value = response.headers.get(name);
      if (value !== null) headers[name] = value;
    }
    return { kind: 'proxied', owner, status: response.status, body, headers };
  }
}

function toView(accountId: string, row: AccountRow, balance: BalanceRow | undefined, position: AccountView['position'], servedBy: Owner): AccountView {
  const digits = currencyDigits(row.currency) ?? 2;
  const money = (minor: string | undefined) => formatMoney(BigInt(minor ?? '0'), digits);
  const view: AccountView = {
    accountId,
    ownerId: row.ownerId,
    currency: row.currency,
    status: row.status,
    balance: money(balance?.balance),
    inFlight: money(balance?.inFlight),
    overdraftLimit: money(row.overdraftLimit),
    openedAt: row.openedAt,
    position,
    servedBy,
  };
  if (row.closedAt !== undefined) view.closedAt = row.closedAt;
  return view;
}

function stringOrNull(value: bigint | null): string | null {
  return value === null ? null : value.toString();
}

/** Re-raises a proxied problem+json answer as an ApiError with the owner's code and detail. */
export function remoteProblem(result: Extract<QueryResult, { kind: 'proxied' }>): ApiError {
  let code: ProblemCode = codeForStatus(result.status);
  let detail = `instance ${result.owner.instanceId} answered ${result.status}`;
  try {
    const body = JSON.parse(result.body.toString('utf8')) as { code?: unknown; detail?: unknown };
    if (typeof body.code === 'string' && body.code in PROBLEM_CODES) code = body.code as ProblemCode;
    if (typeof body.detail === 'string') detail = body.detail;
  } catch {
    code = 'bad_gateway';
  }
  const retryAfter = Number(result.headers['retry-after']);
  return new ApiError(code, detail, Number.isFinite(retryAfter) ? { retryAfterS: retryAfter } : {});
}
