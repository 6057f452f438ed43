// Holds (two-phase transfers, README-BANK "Holds"): place, post (all or part), void, and read one.
// Roles as for transfers: a customer acts on holds debiting an own account (`from`), an admin on any; any
// principal reads a hold, a customer only one naming an own account. Commands go to the input topic keyed
// by the hold's `from`, the task that decides every transition. A post or void names `from` in its body,
// or the route finds it in the read model's holds row (404 hold_not_found while the sink has not recorded
// the hold, 409 hold_id_ambiguous when the id is a hold of several accounts). Idempotent by transferId as
// transfers are: the hold's own id for a hold, the post's or void's transferId for those.
// 202 + Location (the hold) at once, or with ?wait=<ms> the outcome (200) when it comes in time.
import type { Router } from '@koa/router';
import type { Context } from 'koa';
import type { HoldApiCommand, ResolveHoldCommand } from '../../commands/sender.ts';
import { ApiError } from '../../problems/errors.ts';
import { HOLD_STATUS_BY_TYPE, type TransferResult } from '../../tails/outcomes.ts';
import { authenticate, requireRole } from '../auth.ts';
import { type JsonObject, readJsonObject } from '../body.ts';
import { type ApiDeps, assertOwnsAnyAccount } from '../context.ts';
import { parseHoldRequest, parseResolveRequest } from '../hold-input.ts';
import { type HoldDocument, holdsById } from '../hold-reads.ts';
import { idempotencyKey, idParam, intQuery, stringQuery } from '../validate.ts';
import { sendCommand } from './transfers.ts';

export function holdRoutes(router: Router, deps: ApiDeps): void {
  const auth = authenticate(deps.authenticator);
  router.post('/v1/holds', auth, (ctx) => placeHold(ctx, deps));
  router.post('/v1/holds/:id/post', auth, (ctx) => resolveHold(ctx, deps, 'post_hold'));
  router.post('/v1/holds/:id/void', auth, (ctx) => resolveHold(ctx, deps, 'void_hold'));
  router.get('/v1/holds/:id', auth, (ctx) => getHold(ctx, deps));
}

async function placeHold(ctx: Context, deps: ApiDeps): Promise<void> {
  requireRole(ctx, 'customer', 'admin');
  const waitMs = intQuery(ctx.query, 'wait', 0, deps.config.http.waitMaxMs);
  const key = idempotencyKey(ctx.headers['idempotency-key']);
  const json = await readJsonObject(ctx, deps.config.http.bodyLimitBytes);
  const command = parseHoldRequest(json, key, Date.now());
  await submit(ctx, deps, command, command.transferId, waitMs);
}

async function resolveHold(ctx: Context, deps: ApiDeps, type: ResolveHoldCommand['type']): Promise<void> {
  requireRole(ctx, 'customer', 'admin');
  const holdId = idParam('id', ctx.params['id']);
  const waitMs = intQuery(ctx.query, 'wait', 0, deps.config.http.waitMaxMs);
  const key = idempotencyKey(ctx.headers['idempotency-key']);
  const request = parseResolveRequest(type, await optionalJsonObject(ctx, deps), key);
  const from = request.from ?? (await fromOfHold(ctx, deps, holdId));
  const command: ResolveHoldCommand = {
    type,
    transferId: request.transferId,
    holdId,
    from,
    ...(request.amount === undefined ? {} : { amount: request.amount, currency: request.currency! }),
  };
  await submit(ctx, deps, command, holdId, waitMs);
}

async function submit(
  ctx: Context,
  deps: ApiDeps,
  command: HoldApiCommand,
  holdId: string,
  waitMs: number | undefined,
): Promise<void> {
  const location = holdLocation(holdId, command.from);
  const transfer = `/v1/transfers/${encodeURIComponent(command.transferId)}?account=${encodeURIComponent(command.from)}`;
  const result = await sendCommand(ctx, deps, command, command.from, waitMs, location);
  if (result) return answerOutcome(ctx, result, location);
  ctx.status = 202;
  ctx.body = { transferId: command.transferId, type: command.type, holdId, status: 'accepted', location, transfer };
}

/** A completed outcome answers with the hold's new status (pending, posted, voided); a failure with `failed`. */
function answerOutcome(ctx: Context, result: TransferResult, location: string): void {
  if (result.kind === 'conflict') {
    throw new ApiError(
      'idempotency_conflict',
      String(result.value['reason'] ?? 'this transferId was used for a different command'),
      { extensions: { transferId: result.value['transferId'] } },
    );
  }
  const status = result.kind === 'completed' ? HOLD_STATUS_BY_TYPE[String(result.value['type'])] : 'failed';
  ctx.status = 200;
  ctx.body = { ...result.value, status, location };
}

/** A post's or void's body may be left out: every field of it is optional but its transferId (or header). */
async function optionalJsonObject(ctx: Context, deps: ApiDeps): Promise<JsonObject> {
  // No body at all (no Content-Length or 0, not chunked), whatever Content-Type a client sent with it.
  const empty = (ctx.request.length ?? 0) === 0 && !ctx.get('Transfer-Encoding');
  return empty ? {} : readJsonObject(ctx, deps.config.http.bodyLimitBytes);
}

/**
 * The `from` of the hold a post or void names without one: its row in the read model, or, while the sink
 * has not recorded it yet, the `pending` outcome this instance saw last under that id (a post right after
 * a ?wait hold).
 */
async function fromOfHold(ctx: Context, deps: ApiDeps, holdId: string): Promise<string> {
  try {
    return (await oneHold(ctx, deps, holdId, undefined)).from;
  } catch (error) {
    if (!(error instanceof ApiError) || error.code !== 'hold_not_found') throw error;
    const seen = deps.tracker.recentOutcome(holdId);
    if (seen?.['type'] === 'hold' && seen['status'] === 'completed' && typeof seen['from'] === 'string')
      return seen['from'];
    throw error;
  }
}

/** GET /v1/holds/:id[?account=]: the hold's state as the sink recorded it. */
async function getHold(ctx: Context, deps: ApiDeps): Promise<void> {
  const holdId = idParam('id', ctx.params['id']);
  const raw = stringQuery(ctx.query, 'account', 256);
  const account = raw === undefined ? undefined : idParam('query.account', raw);
  ctx.set('Cache-Control', 'no-store');
  ctx.body = await oneHold(ctx, deps, holdId, account);
}

/** The one hold of `holdId` (of `from` when given) the principal may see, or the problem saying why not. */
async function oneHold(ctx: Context, deps: ApiDeps, holdId: string, from: string | undefined): Promise<HoldDocument> {
  const found = await holdsById(deps.readModel, holdId, from);
  if (found.length === 0)
    throw new ApiError(
      'hold_not_found',
      `hold ${holdId}${from === undefined ? '' : ` of account ${from}`} is unknown or not recorded yet`,
    );
  const visible: HoldDocument[] = [];
  for (const hold of found) if (await mayRead(ctx, deps, hold)) visible.push(hold);
  if (visible.length === 0)
    throw new ApiError('forbidden', 'neither account of this hold belongs to the token subject');
  if (visible.length > 1) {
    throw new ApiError(
      'hold_id_ambiguous',
      `hold id ${holdId} names holds of ${visible.length} accounts; name one with ?account= (or from in the body)`,
      {
        extensions: {
          holdId,
          holds: visible.map((h) => ({ from: h.from, status: h.status, location: holdLocation(holdId, h.from) })),
        },
      },
    );
  }
  return visible[0]!;
}

async function mayRead(ctx: Context, deps: ApiDeps, hold: HoldDocument): Promise<boolean> {
  try {
    await assertOwnsAnyAccount(ctx, deps, [hold.from, hold.to]);
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.code === 'forbidden') return false;
    throw error;
  }
}

function holdLocation(holdId: string, from: string): string {
  return `/v1/holds/${encodeURIComponent(holdId)}?account=${encodeURIComponent(from)}`;
}
