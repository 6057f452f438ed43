// /v1/accounts: open and close (commands), the interactive balance query (local or proxied to the owner),
// the history from the read model and the account's event stream.
import { randomUUID } from 'node:crypto';
import type { Router } from '@koa/router';
import type { Context, Next } from 'koa';
import { currencyDigits, formatMoney } from '../../bank/money.ts';
import { INSTANCE_HEADER, STALE_LAG_HEADER, VIA_HEADER } from '../accounts.ts';
import { authenticate, principalOf, requireRole } from '../auth.ts';
import type { Principal } from '../principal.ts';
import { readJsonObject } from '../body.ts';
import type { CloseAccountCommand, OpenAccountCommand } from '../../commands/sender.ts';
import { type ApiDeps, assertOwnsAccount, forbiddenAccount, queryRequest } from '../context.ts';
import { ApiError } from '../../problems/errors.ts';
import type { AccountResult } from '../../tails/outcomes.ts';
import { BodyReader, boolQuery, idParam, intQuery, stringQuery } from '../validate.ts';

const HISTORY_LIMIT_DEFAULT = 20;
const HISTORY_LIMIT_MAX = 100;

export function accountRoutes(router: Router, deps: ApiDeps): void {
  const auth = authenticate(deps.authenticator);
  router.post('/v1/accounts', auth, (ctx) => openAccount(ctx, deps));
  router.get(ACCOUNT_READ_ROUTE, readAuth(deps), (ctx) => getAccount(ctx, deps));
  router.post('/v1/accounts/:id/close', auth, (ctx) => closeAccount(ctx, deps));
  router.get('/v1/accounts/:id/transfers', auth, (ctx) => accountHistory(ctx, deps));
  router.get('/v1/accounts/:id/events', auth, (ctx) => accountEvents(ctx, deps));
}

const ACCOUNT_READ_ROUTE = '/v1/accounts/:id';
/** The path ACCOUNT_READ_ROUTE matches in the router (`:id` is one segment; strict: false allows a trailing slash). */
const ACCOUNT_READ_PATH = /^\/v1\/accounts\/([^/]+)\/?$/;

/** The one route other instances call (proxied reads), with an instance credential instead of a token. */
function readAuth(deps: ApiDeps) {
  return authenticate(deps.authenticator, {
    keys: deps.config.clusterKeys!,
    self: deps.config.instanceId,
    clockToleranceS: deps.config.auth.clockToleranceS,
  });
}

/**
 * GET /v1/accounts/:id, the hottest route, dispatched before the router: the same authentication and
 * handler as the router's route, without matching every route's pattern and composing the matched
 * layers on each request (about a tenth of a balance read's CPU). Mounted after strictPathEncoding, so
 * the segment decodes; the router decodes its parameters the same way. Anything else goes on to the router.
 */
export function accountReadRoute(deps: ApiDeps) {
  const auth = readAuth(deps);
  return (context: Context, next: Next): Promise<void> => {
    if (context.method !== 'GET') return next();
    const match = ACCOUNT_READ_PATH.exec(context.path);
    if (!match) return next();
    context.params = { id: decodeURIComponent(match[1]!) };
    // What the router sets for the metrics' and the access log's route label.
    context['_matchedRoute'] = ACCOUNT_READ_ROUTE;
    return auth(context, () => getAccount(context, deps));
  };
}

async function openAccount(ctx: Context, deps: ApiDeps): Promise<void> {
  const principal = requireRole(ctx, 'teller', 'admin');
  await deps.quotas.consumeCommand(principal);
  const waitMs = intQuery(ctx.query, 'wait', 0, deps.config.http.waitMaxMs);
  const body = new BodyReader(await readJsonObject(ctx, deps.config.http.bodyLimitBytes));
  // Client-chosen ids make a retried open safe (the second one is rejected as account_exists).
  const accountId = body.id('accountId', true) ?? `acc-${randomUUID()}`;
  const ownerId = body.id('ownerId');
  const currency = body.currency('currency');
  const overdraftLimit = body.money('overdraftLimit', currency, { optional: true, allowZero: true });
  body.done();
  const command: OpenAccountCommand = {
    type: 'open_account',
    accountId,
    ownerId: ownerId!,
    currency: currency!,
    ...(overdraftLimit === undefined ? {} : { overdraftLimit }),
  };
  const result = await submitAccountCommand(deps, principal, command, 'open', waitMs);
  ctx.set('Location', `/v1/accounts/${encodeURIComponent(accountId)}`);
  if (!result) return accepted(ctx, { accountId, status: 'pending' });
  throwIfRejected(result, accountId);
  ctx.status = 201;
  ctx.body = {
    accountId,
    ownerId,
    currency,
    overdraftLimit: overdraftLimit ?? formatMoney(0n, currencyDigits(currency!)!),
    status: 'open',
    openedAt: result.value['at'],
  };
}

async function closeAccount(ctx: Context, deps: ApiDeps): Promise<void> {
  const principal = requireRole(ctx, 'teller', 'admin');
  await deps.quotas.consumeCommand(principal);
  const accountId = idParam('id', ctx.params['id']);
  const waitMs = intQuery(ctx.query, 'wait', 0, deps.config.http.waitMaxMs);
  const command: CloseAccountCommand = { type: 'close_account', accountId };
  const result = await submitAccountCommand(deps, principal, command, 'close', waitMs);
  ctx.set('Location', `/v1/accounts/${encodeURIComponent(accountId)}`);
  if (!result) return accepted(ctx, { accountId, status: 'pending' });
  throwIfRejected(result, accountId);
  ctx.body = { accountId, status: 'closed', closedAt: result.value['at'] };
}

/** Produces the command; with waitMs > 0 waits (bounded) for its audit answer. */
async function submitAccountCommand(
  deps: ApiDeps,
  principal: Principal,
  command: OpenAccountCommand | CloseAccountCommand,
  kind: 'open' | 'close',
  waitMs: number | undefined,
): Promise<AccountResult | undefined> {
  if (!waitMs) {
    await deps.sender.send(command, new Date().toISOString());
    return undefined;
  }
  const release = deps.quotas.acquireWaiter(principal);
  try {
    const waiter = deps.tracker.expectAccount(command.accountId, kind);
    try {
      await deps.sender.send(command, new Date().toISOString());
    } catch (error) {
      waiter.cancel();
      throw error;
    }
    return await waiter.wait(waitMs);
  } finally {
    release();
  }
}

function throwIfRejected(result: AccountResult, accountId: string): void {
  if (result.event !== 'account_command_rejected') return;
  const reason = typeof result.value['reason'] === 'string' ? result.value['reason'] : `rejected with ${result.code}`;
  if (result.code === 'account_exists') throw new ApiError('account_exists', reason);
  if (result.code === 'account_not_found')
    throw new ApiError('account_not_found', `account ${accountId} does not exist`);
  throw new ApiError('account_command_rejected', reason, { extensions: { rejection: result.code } });
}

function accepted(ctx: Context, body: Record<string, unknown>): void {
  ctx.status = 202;
  ctx.body = { ...body, location: ctx.response.get('Location') };
}

async function getAccount(ctx: Context, deps: ApiDeps): Promise<void> {
  const accountId = idParam('id', ctx.params['id']);
  const principal = principalOf(ctx);
  const result = await deps.queries.read(accountId, queryRequest(ctx, boolQuery(ctx.query, 'allowStale') ?? false));
  // Checked here for a proxied answer too: the owner checked the principal it was sent, and so do we.
  if (principal.role === 'customer' && result.view.ownerId !== principal.subject) throw forbiddenAccount(accountId);
  ctx.set(INSTANCE_HEADER, result.view.servedBy.instanceId);
  if (result.view.stale) ctx.set(STALE_LAG_HEADER, result.view.stale.lagRecords);
  if (result.kind === 'proxied') ctx.set(VIA_HEADER, deps.config.instanceId);
  ctx.set('Cache-Control', 'no-store');
  ctx.body = result.view;
}

async function accountHistory(ctx: Context, deps: ApiDeps): Promise<void> {
  const accountId = idParam('id', ctx.params['id']);
  const limit = intQuery(ctx.query, 'limit', 1, HISTORY_LIMIT_MAX) ?? HISTORY_LIMIT_DEFAULT;
  const cursor = stringQuery(ctx.query, 'cursor', 600);
  await assertOwnsAccount(ctx, deps, accountId);
  const page = await deps.readModel.history(accountId, limit, cursor);
  const next = page.nextCursor
    ? `/v1/accounts/${encodeURIComponent(accountId)}/transfers?limit=${limit}&cursor=${page.nextCursor}`
    : null;
  if (next) ctx.set('Link', `<${next}>; rel="next"`);
  // Where the page was read and how far behind that server was (docs/operations.md "Read replica").
  ctx.set('X-Read-Source', page.read.source);
  if (page.read.lagMs !== null) ctx.set('X-Replica-Lag-Ms', String(page.read.lagMs));
  ctx.body = { accountId, items: page.items, nextCursor: page.nextCursor, next };
}

async function accountEvents(ctx: Context, deps: ApiDeps): Promise<void> {
  const accountId = idParam('id', ctx.params['id']);
  await assertOwnsAccount(ctx, deps, accountId);
  deps.sse.open(ctx, accountId, principalOf(ctx));
}
