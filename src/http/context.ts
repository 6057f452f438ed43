// What the routes need (one object, built by server.ts) and the access checks shared by several routes.
import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import type { StreamsView } from '../streams/status.ts';
import type { PostgresSink } from '../sinks/postgres-sink.ts';
import { type AccountQueries, FORWARDED_HEADER, type QueryRequest } from './accounts.ts';
import { type Authenticator, instanceCallerOf, principalOf } from './auth.ts';
import type { CommandSender } from '../commands/sender.ts';
import { ApiError } from '../problems/errors.ts';
import type { ReadModel } from './history.ts';
import type { InstanceDirectory } from '../cluster/directory.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { requestIdOf } from './middleware.ts';
import type { LoginThrottle } from './login-throttle.ts';
import type { OutcomeTracker } from '../tails/outcomes.ts';
import type { PrincipalQuotas } from './quotas.ts';
import type { SseHub } from './sse.ts';

export interface ApiDeps {
  config: Config;
  logger: Logger;
  streams: StreamsView;
  sink: PostgresSink | undefined;
  metrics: Metrics;
  authenticator: Authenticator;
  sender: CommandSender;
  tracker: OutcomeTracker;
  directory: InstanceDirectory;
  queries: AccountQueries;
  readModel: ReadModel;
  sse: SseHub;
  quotas: PrincipalQuotas;
  logins: LoginThrottle;
  /** This instance's advertised URL (final once the server listens). */
  selfUrl(): string;
}

/** `allowStale` only where the route offers it (GET /v1/accounts/:id); ownership checks read fresh state. */
export function queryRequest(ctx: Context, allowStale = false): QueryRequest {
  return {
    principal: principalOf(ctx),
    requestId: requestIdOf(ctx),
    // A call from another instance is never proxied again (one hop at most).
    forwarded: instanceCallerOf(ctx) !== undefined || ctx.get(FORWARDED_HEADER) !== '',
    allowStale,
  };
}

/**
 * A customer may only act on accounts they own; tellers and admins on any. Ownership comes from the
 * account's owning task (locally or through the owner instance), the source of truth, not the read model.
 */
export async function assertOwnsAccount(ctx: Context, deps: ApiDeps, accountId: string): Promise<void> {
  const principal = principalOf(ctx);
  if (principal.role !== 'customer') return;
  const owner = await deps.queries.ownerOf(accountId, queryRequest(ctx));
  if (owner !== principal.subject) throw forbiddenAccount(accountId);
}

/** For documents that name several accounts (a transfer): a customer must own at least one of them. */
export async function assertOwnsAnyAccount(ctx: Context, deps: ApiDeps, accountIds: string[]): Promise<void> {
  const principal = principalOf(ctx);
  if (principal.role !== 'customer') return;
  for (const accountId of accountIds) {
    try {
      if ((await deps.queries.ownerOf(accountId, queryRequest(ctx))) === principal.subject) return;
    } catch (error) {
      // Someone else's account (403 from its owner instance) or one that does not exist: try the next one.
      if (!(error instanceof ApiError) || (error.code !== 'forbidden' && error.code !== 'account_not_found'))
        throw error;
    }
  }
  throw new ApiError('forbidden', 'none of the accounts of this transfer belongs to the token subject');
}

export function forbiddenAccount(accountId: string): ApiError {
  return new ApiError('forbidden', `account ${accountId} does not belong to the token subject`);
}
