// Interactive queries of one account: answered from the owning task's stores when this instance runs the
// account's partition, otherwise proxied to the owner named by the instance directory (one hop at most:
// a forwarded request is never forwarded again). 503 + Retry-After while the partition is restoring,
// unowned or moving. Reads are committed state only (readCommittedAt), each with the store position it was read at.
// Asked with allowStale, an instance that keeps a standby of the partition answers from the standby's
// stores (maybe behind: the lag in records is in the body and a header) rather than proxying or a 503;
// one that keeps none asks the owner, and when the owner does not answer or answers 503 (it died, it is
// restoring), an instance the directory names as keeping a standby of the partition.
// A proxied read carries an instance credential with the caller's verified principal (instance-call.ts),
// never the user's token; the owner re-checks that principal's rights; its answer is read with a timeout
// and a size bound and passed on only when it has the expected shape (checkedView, remoteProblem).
import { AssertionError } from 'node:assert';
import type { AccountRow, BalanceRow } from '../bank/stores.ts';
import type { Config } from '../config/config.ts';
import { partitionForKey } from '../kafka/partitioner.ts';
import type { StreamsView } from '../streams/status.ts';
import { type CommittedRead, StoreFailedError, type TaskStore } from '../stores/types.ts';
import type { Principal } from './principal.ts';
import { type AccountView, toView } from './account-view.ts';
import { ApiError, unavailable } from '../problems/errors.ts';
import { INSTANCE_CALL_HEADER, signInstanceCall } from './instance-call.ts';
import type { InstanceDirectory } from '../cluster/directory.ts';
import type { Owner } from '../cluster/directory-records.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { LruMap } from '../stores/lru.ts';
import { checkedView, PROXY_RESPONSE_BYTES_MAX, readBounded, remoteProblem } from './proxy-answer.ts';

/** Set on proxied requests; an instance receiving it answers locally or 503, never proxies again. */
export const FORWARDED_HEADER = 'X-Bankstream-Forwarded';
export const INSTANCE_HEADER = 'X-Bankstream-Instance';
export const VIA_HEADER = 'X-Bankstream-Proxied-Via';
/** On a stale read: changelog records the standby had not applied yet when it answered. */
export const STALE_LAG_HEADER = 'X-Bankstream-Standby-Lag';

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
  streams: StreamsView;
  directory: InstanceDirectory;
  metrics: Metrics;
  selfUrl: () => string;
}

/** A local read with its JSON (readHere). The view is shared: read it, never change it. */
export interface LocalRead {
  readonly view: AccountView;
  readonly body: string;
}

interface RecentRead extends LocalRead {
  accounts: TaskStore<unknown> | undefined;
  balances: TaskStore<unknown> | undefined;
  accountsAt: bigint | null | undefined;
  balancesAt: bigint | null | undefined;
  url: string;
}

/** Local reads remembered by readHere (about half a kilobyte each). */
const RECENT_READS_MAX = 10_000;

export class AccountQueries {
  readonly #options: AccountQueriesOptions;
  readonly #recent = new LruMap<string, RecentRead>(RECENT_READS_MAX);

  constructor(options: AccountQueriesOptions) {
    this.#options = options;
  }

  /**
   * The local read `read` makes when this instance runs the account's partition, with its JSON; undefined
   * when it does not. Remembers recent answers (RECENT_READS_MAX, least recently used dropped first) with
   * the task's stores and their changelog positions: an answer is reused only while the same task runs
   * and neither store's position has moved. A store's position moves with every flush or restore that
   * changes its committed state, so a reused answer is exactly what a new read would give; answers are
   * remembered only when no flush landed during their read.
   */
  readHere(accountId: string): Promise<LocalRead> | undefined {
    const { streams } = this.#options;
    if (streams.partitions === 0) return undefined;
    const partition = partitionForKey(accountId, streams.partitions);
    const task = streams.task(partition);
    if (!task) return undefined;
    const accounts = task.stores.get('accounts');
    const balances = task.stores.get('balances');
    const recent = this.#recent.get(accountId);
    if (
      recent !== undefined &&
      recent.accounts === accounts &&
      recent.balances === balances &&
      recent.accountsAt === accounts?.position() &&
      recent.balancesAt === balances?.position() &&
      recent.url === this.#options.selfUrl() &&
      this.#localUsable(partition, task)
    )
      return Promise.resolve(recent);
    const accountsAt = accounts?.position();
    const balancesAt = balances?.position();
    return this.#readLocal(accountId, partition).then((view) => {
      const read: RecentRead = {
        view,
        body: JSON.stringify(view),
        accounts,
        balances,
        accountsAt,
        balancesAt,
        url: view.servedBy.url,
      };
      if (
        accounts?.position() === accountsAt &&
        balances?.position() === balancesAt &&
        streams.task(partition) === task
      )
        this.#recent.set(accountId, read);
      return read;
    });
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
    const usable = () => this.#localUsable(partition, task);
    const restoring = () =>
      unavailable(
        'partition_unavailable',
        `partition ${partition} is restoring or being reassigned on ${config.instanceId}`,
      );
    return this.#readStores(accountId, partition, task.stores, usable, restoring);
  }

  #localUsable(partition: number, task: NonNullable<ReturnType<StreamsView['task']>>): boolean {
    const { streams } = this.#options;
    return streams.state === 'RUNNING' && streams.task(partition) === task && task.state === 'RUNNING';
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
    let row: CommittedRead<AccountRow>;
    let balance: CommittedRead<BalanceRow>;
    try {
      // Each value with the position it was read at: a flush landing meanwhile moves position() later.
      [row, balance] = await Promise.all([accounts.readCommittedAt(accountId), balances.readCommittedAt(accountId)]);
    } catch (error) {
      // The task was closed under the read (a rebalance, or the engine closing its tasks after a failed
      // commit, which happens around members leaving): not an error of the store, a move. Logged with its cause.
      if (!usable() || storeClosedUnderRead(error))
        throw new ApiError(restoring().code, restoring().message, { retryAfterS: 1, cause: error });
      throw error;
    }
    if (!usable()) throw restoring();
    if (!row.value) throw new ApiError('account_not_found', `account ${accountId} does not exist`);
    const position = {
      partition,
      accounts: stringOrNull(row.position),
      balances: stringOrNull(balance.position),
    };
    return toView(accountId, row.value, balance.value, position, {
      instanceId: config.instanceId,
      url: this.#options.selfUrl(),
    });
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
