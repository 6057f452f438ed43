// Interactive queries of one account: answered from the owning task's stores when this instance runs the
// account's partition, otherwise proxied to the owner named by the instance directory (one hop at most:
// a forwarded request is never forwarded again). 503 + Retry-After while the partition is restoring,
// unowned or moving. Reads are committed state only (readCommitted), with the store positions they saw.
// Asked with allowStale, an instance that keeps a standby of the partition answers from the standby's
// stores (maybe behind: the lag in records is in the body and a header) rather than proxying or a 503;
// one that keeps none asks the owner, and when the owner does not answer or answers 503 (it died, it is
// restoring), an instance the directory names as keeping a standby of the partition.
// A proxied read carries an instance credential with the caller's verified principal (instance-call.ts),
// never the user's token; the owner re-checks that principal's rights; its answer is read with a timeout
// and a size bound and passed on only when it has the expected shape (checkedView, remoteProblem).
import { AssertionError } from 'node:assert';
import type { AccountRow, BalanceRow } from '../bank/stores.ts';
import { currencyDigits, formatMoney } from '../bank/money.ts';
import type { Config } from '../config/config.ts';
import { partitionForKey } from '../kafka/partitioner.ts';
import type { KafkaStreams } from '../runtime/kafka-streams.ts';
import { StoreFailedError, type TaskStore } from '../stores/types.ts';
import type { Principal } from './principal.ts';
import { ApiError, PROBLEM_CODES, type ProblemCode, unavailable } from './errors.ts';
import { INSTANCE_CALL_HEADER, signInstanceCall } from './instance-call.ts';
import type { InstanceDirectory, Owner } from './instances.ts';
import type { Metrics } from './metrics.ts';

/** Set on proxied requests; an instance receiving it answers locally or 503, never proxies again. */
export const FORWARDED_HEADER = 'X-Bankstream-Forwarded';
export const INSTANCE_HEADER = 'X-Bankstream-Instance';
export const VIA_HEADER = 'X-Bankstream-Proxied-Via';
/** On a stale read: changelog records the standby had not applied yet when it answered. */
export const STALE_LAG_HEADER = 'X-Bankstream-Standby-Lag';
const PROXY_RESPONSE_BYTES_MAX = 64 * 1024;

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
  /** The verified principal the read is made for; a proxied read carries it in an instance credential. */
  principal: Principal;
  requestId: string;
  /** The request came from another instance: do not proxy it again. */
  forwarded: boolean;
  /** The caller accepts a read from a standby, which may be behind the owner. */
  allowStale: boolean;
}

/** A read answered here, or by the owner (its answer checked field by field and rebuilt, never relayed as bytes). */
export type QueryResult = { kind: 'local'; view: AccountView } | { kind: 'proxied'; owner: Owner; view: AccountView };

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
    if (request.allowStale && streams.standby(partition))
      return { kind: 'local', view: await this.#readStandby(accountId, partition) };
    if (request.forwarded)
      throw unavailable(
        'partition_unavailable',
        `partition ${partition} is not running on ${config.instanceId} (forwarded request, not proxied again)`,
      );
    const owner = directory.ownerOf(partition);
    const hasOwner = owner !== undefined && owner.instanceId !== config.instanceId;
    if (!request.allowStale) {
      if (!hasOwner)
        throw unavailable(
          'partition_unavailable',
          `partition ${partition} has no running owner yet (restoring or moving)`,
        );
      return this.#proxy(owner, accountId, partition, request);
    }
    let failure: unknown = unavailable(
      'partition_unavailable',
      `partition ${partition} has no running owner yet (restoring or moving) and no standby is known`,
    );
    for (const target of [...(hasOwner ? [owner] : []), ...directory.standbyHoldersOf(partition)]) {
      try {
        return await this.#proxy(target, accountId, partition, request);
      } catch (error) {
        // A 503 (restoring, moving) or no answer: the next standby may serve; a 403 or 404 is the answer.
        if (error instanceof ApiError && error.status !== 503) throw error;
        failure = error;
      }
    }
    throw failure;
  }

  /** The owner of an account as its owning task sees it; throws the owner's problem (403, 404, 503) as is. */
  async ownerOf(accountId: string, request: QueryRequest): Promise<string> {
    return (await this.read(accountId, request)).view.ownerId;
  }

  async #readLocal(accountId: string, partition: number): Promise<AccountView> {
    const { streams, config } = this.#options;
    const task = streams.task(partition)!;
    const usable = () => streams.state === 'RUNNING' && streams.task(partition) === task && task.state === 'RUNNING';
    const restoring = () =>
      unavailable(
        'partition_unavailable',
        `partition ${partition} is restoring or being reassigned on ${config.instanceId}`,
      );
    return this.#readStores(accountId, partition, task.stores, usable, restoring);
  }

  /** A stale read from a standby's stores: they only ever hold committed changelog records. */
  async #readStandby(accountId: string, partition: number): Promise<AccountView> {
    const { streams, config } = this.#options;
    const standby = streams.standby(partition)!;
    const usable = () => streams.standby(partition)?.task === standby.task;
    const moving = () =>
      unavailable(
        'partition_unavailable',
        `the standby of partition ${partition} on ${config.instanceId} is being reassigned`,
      );
    const view = await this.#readStores(accountId, partition, standby.task.stores, usable, moving);
    view.stale = { standby: true, lagRecords: standby.lagRecords.toString() };
    return view;
  }

  async #readStores(
    accountId: string,
    partition: number,
    stores: Map<string, TaskStore<unknown>>,
    usable: () => boolean,
    restoring: () => ApiError,
  ): Promise<AccountView> {
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
      // The task was closed under the read (a rebalance, or the engine closing its tasks after a failed
      // commit, which happens around members leaving): not an error of the store, a move. Logged with its cause.
      if (!usable() || storeClosedUnderRead(error))
        throw new ApiError(restoring().code, restoring().message, { retryAfterS: 1, cause: error });
      throw error;
    }
    if (!usable()) throw restoring();
    if (!row) throw new ApiError('account_not_found', `account ${accountId} does not exist`);
    const position = {
      partition,
      accounts: stringOrNull(accounts.position()),
      balances: stringOrNull(balances.position()),
    };
    return toView(accountId, row, balance, position, { instanceId: config.instanceId, url: this.#options.selfUrl() });
  }

  async #proxy(owner: Owner, accountId: string, partition: number, request: QueryRequest): Promise<QueryResult> {
    const { config, metrics } = this.#options;
    const keys = config.clusterKeys!;
    const path = `/v1/accounts/${encodeURIComponent(accountId)}${request.allowStale ? '?allowStale=true' : ''}`;
    const credential = signInstanceCall(keys, request.principal, {
      caller: config.instanceId,
      target: owner.instanceId,
      method: 'GET',
      path,
    });
    let answer: { status: number; headers: Headers; body: Buffer };
    try {
      const response = await fetch(`${owner.url.replace(/\/+$/, '')}${path}`, {
        method: 'GET',
        redirect: 'manual',
        signal: AbortSignal.timeout(config.http.proxyTimeoutMs),
        headers: {
          [INSTANCE_CALL_HEADER]: credential,
          'X-Request-Id': request.requestId,
          [FORWARDED_HEADER]: '1',
          Accept: 'application/json',
        },
      });
      answer = {
        status: response.status,
        headers: response.headers,
        body: await readBounded(response, PROXY_RESPONSE_BYTES_MAX),
      };
    } catch (error) {
      if (error instanceof ApiError) {
        metrics.proxied.inc({ result: 'malformed' });
        throw new ApiError(
          'bad_gateway',
          `instance ${owner.instanceId} answered with more than ${PROXY_RESPONSE_BYTES_MAX} bytes`,
        );
      }
      metrics.proxied.inc({ result: 'unreachable' });
      // The owner is down or slow: most likely it is dying and the partition is about to move.
      throw unavailable(
        'partition_unavailable',
        `the owner of the partition (${owner.instanceId}) did not answer`,
        1,
        error,
      );
    }
    metrics.proxied.inc({ result: String(answer.status) });
    if (answer.status !== 200) {
      const problem = remoteProblem(owner, answer.status, answer.headers, answer.body);
      problem.headers[VIA_HEADER] = config.instanceId;
      throw problem;
    }
    const view = checkedView(answer.body, { accountId, partition, owner, allowStale: request.allowStale });
    if (!view) {
      metrics.proxied.inc({ result: 'malformed' });
      throw new ApiError(
        'bad_gateway',
        `instance ${owner.instanceId} answered with a body that is not an account view`,
      );
    }
    return { kind: 'proxied', owner, view };
  }
}

/** The body of a response, refusing (ApiError) more than `maxBytes`: a hostile or broken peer cannot fill memory. */
async function readBounded(response: Response, maxBytes: number): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw new ApiError('bad_gateway', 'oversized');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  if (!response.body) return Buffer.alloc(0);
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > maxBytes) throw new ApiError('bad_gateway', 'oversized');
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

const MONEY = /^-?\d{1,40}(\.\d{1,6})?$/;
const OFFSET = /^\d{1,20}$/;
const CURRENCY = /^[A-Z]{3}$/;
const ACCOUNT_ID = /^[^\u0000-\u001f\u007f]{1,256}$/u;

/**
 * The owner's 200 answer as an AccountView, every field checked and the object rebuilt, or undefined: only
 * the expected shape is passed on, and what identifies the read (account, partition, owner) must be ours.
 */
export function checkedView(
  body: Buffer,
  expected: { accountId: string; partition: number; owner: Owner; allowStale: boolean },
): AccountView | undefined {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const str = (value: unknown, pattern: RegExp): value is string => typeof value === 'string' && pattern.test(value);
  const position = v['position'] as Record<string, unknown> | undefined;
  const servedBy = v['servedBy'] as Record<string, unknown> | undefined;
  const stale = v['stale'] as Record<string, unknown> | undefined;
  const offsetOrNull = (value: unknown) => value === null || str(value, OFFSET);
  const valid =
    v['accountId'] === expected.accountId &&
    str(v['ownerId'], ACCOUNT_ID) &&
    str(v['currency'], CURRENCY) &&
    (v['status'] === 'open' || v['status'] === 'closed') &&
    str(v['balance'], MONEY) &&
    str(v['inFlight'], MONEY) &&
    str(v['overdraftLimit'], MONEY) &&
    typeof v['openedAt'] === 'string' &&
    Number.isFinite(Date.parse(v['openedAt'])) &&
    (v['closedAt'] === undefined ||
      (typeof v['closedAt'] === 'string' && Number.isFinite(Date.parse(v['closedAt'])))) &&
    typeof position === 'object' &&
    position !== null &&
    position['partition'] === expected.partition &&
    offsetOrNull(position['accounts']) &&
    offsetOrNull(position['balances']) &&
    typeof servedBy === 'object' &&
    servedBy !== null &&
    servedBy['instanceId'] === expected.owner.instanceId &&
    (stale === undefined ||
      (expected.allowStale &&
        typeof stale === 'object' &&
        stale !== null &&
        stale['standby'] === true &&
        str(stale['lagRecords'], OFFSET)));
  if (!valid) return undefined;
  const view: AccountView = {
    accountId: expected.accountId,
    ownerId: v['ownerId'] as string,
    currency: v['currency'] as string,
    status: v['status'] as AccountView['status'],
    balance: v['balance'] as string,
    inFlight: v['inFlight'] as string,
    overdraftLimit: v['overdraftLimit'] as string,
    openedAt: v['openedAt'] as string,
    position: {
      partition: expected.partition,
      accounts: position['accounts'] as string | null,
      balances: position['balances'] as string | null,
    },
    servedBy: { instanceId: expected.owner.instanceId, url: expected.owner.url },
  };
  if (v['closedAt'] !== undefined) view.closedAt = v['closedAt'] as string;
  if (stale !== undefined) view.stale = { standby: true, lagRecords: stale['lagRecords'] as string };
  return view;
}

function toView(
  accountId: string,
  row: AccountRow,
  balance: BalanceRow | undefined,
  position: AccountView['position'],
  servedBy: Owner,
): AccountView {
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

/** A read refused because its store closed or failed closed meanwhile (the task is going away), not a corrupt store. */
function storeClosedUnderRead(error: unknown): boolean {
  if (error instanceof StoreFailedError) return true;
  if (error instanceof AssertionError && /is closed and refuses/.test(error.message)) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'LEVEL_DATABASE_NOT_OPEN' || code === 'LEVEL_ITERATOR_NOT_OPEN';
}

function stringOrNull(value: bigint | null): string | null {
  return value === null ? null : value.toString();
}

// What an owner may answer besides 200: the account's rights (403), existence (404) and availability (429,
// 503), each with the code it stands for when the owner names none of that status.
const PASSED_STATUSES: ReadonlyMap<number, ProblemCode> = new Map([
  [403, 'forbidden'],
  [404, 'not_found'],
  [429, 'too_many_requests'],
  [503, 'partition_unavailable'],
]);
const DETAIL_CHARS_MAX = 500;
const RETRY_AFTER_S_MAX = 3600;

/**
 * Re-raises an owner's problem answer as our own ApiError: its code only when it is a known code of that
 * status, its detail bounded and without control characters, Retry-After only as a small number. Anything
 * else, a 401 included (the owner refused OUR credential: a CLUSTER_SECRET mismatch), is a 502.
 */
export function remoteProblem(owner: Owner, status: number, headers: Headers, body: Buffer): ApiError {
  if (status === 401)
    return new ApiError(
      'bad_gateway',
      `instance ${owner.instanceId} refused this instance's credential (is CLUSTER_SECRET the same on both?)`,
    );
  let code = PASSED_STATUSES.get(status);
  if (code === undefined) return new ApiError('bad_gateway', `instance ${owner.instanceId} answered ${status}`);
  let detail = `instance ${owner.instanceId} answered ${status}`;
  try {
    const problem = JSON.parse(body.toString('utf8')) as { code?: unknown; detail?: unknown };
    if (typeof problem !== 'object' || problem === null || Array.isArray(problem))
      throw new TypeError('not a problem document');
    if (
      typeof problem.code === 'string' &&
      Object.hasOwn(PROBLEM_CODES, problem.code) &&
      PROBLEM_CODES[problem.code as ProblemCode].status === status
    )
      code = problem.code as ProblemCode;
    if (typeof problem.detail === 'string')
      detail = problem.detail.replace(/[\u0000-\u001f\u007f]/gu, ' ').slice(0, DETAIL_CHARS_MAX);
  } catch {
    return new ApiError('bad_gateway', `instance ${owner.instanceId} answered ${status} without a problem document`);
  }
  const retryAfter = headers.get('retry-after');
  const retryAfterS =
    retryAfter !== null && /^\d{1,4}$/.test(retryAfter) ? Math.min(Number(retryAfter), RETRY_AFTER_S_MAX) : undefined;
  return new ApiError(code, detail, retryAfterS === undefined ? {} : { retryAfterS });
}
