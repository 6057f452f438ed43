// Money commands (transfers, deposits, withdrawals) and the transfer resource.
// A command is idempotent by its transferId (Idempotency-Key header or body field) within the account it acts
// on (`from`, or `accountId`): the processor turns an exact duplicate into no new effect and a conflicting one
// into idempotency_conflict, so clients may retry. A transfer is identified by (account, transferId): the
// Location names both, and GET /v1/transfers/:id takes ?account= (needed only when the id was reused).
// 202 + Location at once, or with ?wait=<ms> the outcome (200, status completed or failed) when it comes in
// time, else still 202: the command is accepted either way, only the answer is pending.
import type { Router } from '@koa/router';
import type { Context } from 'koa';
import { authenticate, principalOf, requireRole } from '../auth.ts';
import { readJsonObject } from '../body.ts';
import { commandKey, type MoneyCommand, type SingleLegCommand, type TransferCommand } from '../../commands/sender.ts';
import { type ApiDeps, assertOwnsAccount, assertOwnsAnyAccount } from '../context.ts';
import type { TransferDecision, TransferDocument } from '../history.ts';
import { ApiError } from '../../problems/errors.ts';
import { loggerOf } from '../middleware.ts';
import { type TransferResult, resultOf, sameFields } from '../../tails/outcomes.ts';
import type { Role } from '../users.ts';
import { BodyReader, idParam, idempotencyKey, intQuery, stringQuery } from '../validate.ts';

type MoneyType = (SingleLegCommand | TransferCommand)['type'];

// Customers move their own money between accounts; cash in and out goes through a teller.
const ROLES_BY_TYPE: Record<MoneyType, Role[]> = {
  transfer: ['customer', 'admin'],
  deposit: ['teller', 'admin'],
  withdrawal: ['teller', 'admin'],
};

export function transferRoutes(router: Router, deps: ApiDeps): void {
  const auth = authenticate(deps.authenticator);
  router.post('/v1/transfers', auth, (ctx) => submitMoneyCommand(ctx, deps, 'transfer'));
  router.post('/v1/deposits', auth, (ctx) => submitMoneyCommand(ctx, deps, 'deposit'));
  router.post('/v1/withdrawals', auth, (ctx) => submitMoneyCommand(ctx, deps, 'withdrawal'));
  router.get('/v1/transfers/:id', auth, (ctx) => getTransfer(ctx, deps));
}

async function submitMoneyCommand(ctx: Context, deps: ApiDeps, type: MoneyType): Promise<void> {
  requireRole(ctx, ...ROLES_BY_TYPE[type]);
  const waitMs = intQuery(ctx.query, 'wait', 0, deps.config.http.waitMaxMs);
  const key = idempotencyKey(ctx.headers['idempotency-key']);
  const command = parseMoneyCommand(
    type,
    new BodyReader(await readJsonObject(ctx, deps.config.http.bodyLimitBytes)),
    key,
  );
  const location = transferLocation(command.transferId, commandKey(command));
  const result = await sendCommand(ctx, deps, command, commandKey(command), waitMs, location);
  if (result) return answerOutcome(ctx, result);
  ctx.status = 202;
  ctx.body = { transferId: command.transferId, type, status: 'pending', location };
}

/**
 * The common part of every money and hold route once its command is parsed: a customer must own the
 * account the command debits, the command takes one of the principal's command quota, then it is sent,
 * and with ?wait its outcome is awaited in one of the principal's wait slots. The outcome, if it came in
 * time; undefined when the caller answers 202.
 */
export async function sendCommand(
  ctx: Context,
  deps: ApiDeps,
  command: MoneyCommand,
  debited: string,
  waitMs: number | undefined,
  location: string,
): Promise<TransferResult | undefined> {
  const principal = principalOf(ctx);
  if (principal.role === 'customer') await assertOwnsAccount(ctx, deps, debited);
  await deps.quotas.consumeCommand(principal);
  if (!waitMs) {
    await deps.sender.send(command, new Date().toISOString());
    ctx.set('Location', location);
    return undefined;
  }
  // One of the principal's ?wait slots, held until the wait ends however it ends.
  const release = deps.quotas.acquireWaiter(principal);
  try {
    return await sendAndWait(ctx, deps, command, waitMs, location);
  } finally {
    release();
  }
}

/** Produces the command after registering its waiter; the outcome if it comes within waitMs. */
async function sendAndWait(
  ctx: Context,
  deps: ApiDeps,
  command: MoneyCommand,
  waitMs: number,
  location: string,
): Promise<TransferResult | undefined> {
  const waiter = deps.tracker.expectTransfer(command);
  try {
    await deps.sender.send(command, new Date().toISOString());
  } catch (error) {
    waiter.cancel();
    throw error;
  }
  ctx.set('Location', location);
  // An exact duplicate of a transfer decided before this instance started gets no new outcome record:
  // its outcome is in the read model.
  void decidedBefore(deps, command).then(
    (result) => result && waiter.settle(result),
    (error: unknown) => loggerOf(ctx).debug({ err: error }, 'read model lookup of a waited transfer failed'),
  );
  return waiter.wait(waitMs);
}

function parseMoneyCommand(
  type: MoneyType,
  body: BodyReader,
  headerKey: string | undefined,
): SingleLegCommand | TransferCommand {
  const bodyId = body.id('transferId', true);
  if (headerKey !== undefined && bodyId !== undefined && headerKey !== bodyId) {
    body.fail('transferId', 'differs from the Idempotency-Key header; send one or make them equal');
  }
  const transferId = headerKey ?? bodyId;
  if (transferId === undefined)
    body.fail('transferId', 'is required (or an Idempotency-Key header): it makes retries safe');
  const currency = body.currency('currency');
  if (type === 'transfer') {
    const from = body.id('from');
    const to = body.id('to');
    const amount = body.money('amount', currency);
    const reference = body.reference('reference');
    body.done();
    return {
      type,
      transferId: transferId!,
      from: from!,
      to: to!,
      amount: amount!,
      currency: currency!,
      ...(reference === undefined ? {} : { reference }),
    };
  }
  const accountId = body.id('accountId');
  const amount = body.money('amount', currency);
  body.done();
  return { type, transferId: transferId!, accountId: accountId!, amount: amount!, currency: currency! };
}

async function decidedBefore(deps: ApiDeps, command: MoneyCommand): Promise<TransferResult | undefined> {
  const document = await deps.readModel.transfer(command.transferId, commandKey(command));
  return document && sameFields(command, document) ? resultOf(document) : undefined;
}

function answerOutcome(ctx: Context, result: TransferResult): void {
  if (result.kind === 'conflict') {
    throw new ApiError(
      'idempotency_conflict',
      String(result.value['reason'] ?? 'this transferId was used for a different command'),
      {
        extensions: { transferId: result.value['transferId'] },
      },
    );
  }
  ctx.status = 200;
  ctx.body = { ...result.value, status: result.kind };
}

/**
 * The latest decision of (account, transferId). Without ?account=, the one account that decided the id;
 * when several did (the id reused on another account), 409 transfer_id_ambiguous lists them. A customer
 * sees only decisions naming an account of theirs.
 */
async function getTransfer(ctx: Context, deps: ApiDeps): Promise<void> {
  const transferId = idParam('id', ctx.params['id']);
  const raw = stringQuery(ctx.query, 'account', 256);
  const account = raw === undefined ? undefined : idParam('query.account', raw);
  principalOf(ctx);
  const decisions = await deps.readModel.transfers(transferId, account);
  if (decisions.length === 0)
    throw new ApiError(
      'transfer_not_found',
      `transfer ${transferId}${account === undefined ? '' : ` of account ${account}`} is unknown or not recorded yet`,
    );
  const visible = await visibleDecisions(ctx, deps, decisions);
  const latest = visible[0];
  if (!latest) throw new ApiError('forbidden', 'none of the accounts of this transfer belongs to the token subject');
  const accounts = [...new Set(visible.map((d) => d.actedAccount))];
  if (accounts.length > 1) {
    throw new ApiError(
      'transfer_id_ambiguous',
      `transferId ${transferId} was decided on ${accounts.length} accounts; ask for one with ?account=`,
      {
        extensions: {
          transferId,
          decisions: accounts.map((acted) =>
            decisionSummary(transferId, visible.find((d) => d.actedAccount === acted)!),
          ),
        },
      },
    );
  }
  ctx.body = latest.document;
}

async function visibleDecisions(
  ctx: Context,
  deps: ApiDeps,
  decisions: TransferDecision[],
): Promise<TransferDecision[]> {
  const visible: TransferDecision[] = [];
  for (const decision of decisions) if (await mayRead(ctx, deps, decision.document)) visible.push(decision);
  return visible;
}

async function mayRead(ctx: Context, deps: ApiDeps, document: TransferDocument): Promise<boolean> {
  const accounts = [document['accountId'], document['from'], document['to']].filter(
    (a): a is string => typeof a === 'string',
  );
  try {
    await assertOwnsAnyAccount(ctx, deps, accounts);
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.code === 'forbidden') return false;
    throw error;
  }
}

function decisionSummary(transferId: string, decision: TransferDecision): Record<string, unknown> {
  const { document } = decision;
  return {
    account: decision.actedAccount,
    status: document['status'],
    completedAt: document['completedAt'],
    ...(decision.actedAccount === null ? {} : { location: transferLocation(transferId, decision.actedAccount) }),
  };
}

function transferLocation(transferId: string, account: string): string {
  return `/v1/transfers/${encodeURIComponent(transferId)}?account=${encodeURIComponent(account)}`;
}
