// Money commands (transfers, deposits, withdrawals) and the transfer resource.
// A command is idempotent by its transferId (Idempotency-Key header or body field): the processor turns an
// exact duplicate into no new effect and a conflicting one into idempotency_conflict, so clients may retry.
// 202 + Location at once, or with ?wait=<ms> the outcome (200, status completed or failed) when it comes in
// time, else still 202: the command is accepted either way, only the answer is pending.
import { type Router } from '@koa/router';
import { type Context } from 'koa';
import { authenticate, principalOf, requireRole } from '../auth.ts';
import { readJsonObject } from '../body.ts';
import { commandKey, type MoneyCommand } from '../commands.ts';
import { type ApiDeps, assertOwnsAccount, assertOwnsAnyAccount } from '../context.ts';
import { ApiError } from '../errors.ts';
import { loggerOf } from '../middleware.ts';
import { type TransferResult, resultOf, sameFields } from '../outcomes.ts';
import { type Role } from '../users.ts';
import { BodyReader, idParam, idempotencyKey, intQuery } from '../validate.ts';

type MoneyType = MoneyCommand['type'];

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
  const principal = requireRole(ctx, ...ROLES_BY_TYPE[type]);
  const waitMs = intQuery(ctx.query, 'wait', 0, deps.config.http.waitMaxMs);
  const key = idempotencyKey(ctx.headers['idempotency-key']);
  const command = parseMoneyCommand(type, new BodyReader(await readJsonObject(ctx, deps.config.http.bodyLimitBytes)), key);
  if (principal.role === 'customer') await assertOwnsAccount(ctx, deps, commandKey(command));
  await deps.quotas.consumeCommand(principal);
  const location = `/v1/transfers/${encodeURIComponent(command.transferId)}`;
  if (!waitMs) {
    await deps.sender.send(command, new Date().toISOString());
    ctx.set('Location', location);
  } else {
    // One of the principal's ?wait slots, held until the wait ends however it ends.
    const release = deps.quotas.acquireWaiter(principal);
    try {
      const result = await sendAndWait(ctx, deps, command, waitMs, location);
      if (result) return answerOutcome(ctx, result);
    } finally {
      release();
    }
  }
  ctx.status = 202;
  ctx.body = { transferId: command.transferId, type, status: 'pending', location };
}

async function sendAndWait(ctx: Context, deps: ApiDeps, command: MoneyCommand, waitMs: number, location: string): Promise<TransferResult | undefined> {
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

function parseMoneyCommand(type: MoneyType, body: BodyReader, headerKey: string | undefined): MoneyCommand {
  const bodyId = body.id('transferId', true);
  if (headerKey !== undefined && bodyId !== undefined && headerKey !== bodyId) {
    body.fail('transferId', 'differs from the Idempotency-Key header; send one or make them equal');
  }
  const transferId = headerKey ?? bodyId;
  if (transferId === undefined) body.fail('transferId', 'is required (or an Idempotency-Key header): it makes retries safe');
  const currency = body.currency('currency');
  if (type === 'transfer') {
    const from = body.id('from');
    const to = body.id('to');
    const amount = body.money('amount', currency);
    const reference = body.reference('reference');
    body.done();
    return { type, transferId: transferId!, from: from!, to: to!, amount: amount!, currency: currency!, ...(reference === undefined ? {} : { reference }) };
  }
  const accountId = body.id('accountId');
  const amount = body.money('amount', currency);
  body.done();
  return { type, transferId: transferId!, accountId: accountId!, amount: amount!, currency: currency! };
}

async function decidedBefore(deps: ApiDeps, command: MoneyCommand): Promise<TransferResult | undefined> {
  const document = await deps.readModel.transfer(command.transferId);
  return document && sameFields(command, document) ? resultOf(document) : undefined;
}

function answerOutcome(ctx: Context, result: TransferResult): void {
  if (result.kind === 'conflict') {
    throw new ApiError('idempotency_conflict', String(result.value['reason'] ?? 'this transferId was used for a different command'), {
      extensions: { transferId: result.value['transferId'] },
    });
  }
  ctx.status = 200;
  ctx.body = { ...result.value, status: result.kind };
}

async function getTransfer(ctx: Context, deps: ApiDeps): Promise<void> {
  const transferId = idParam('id', ctx.params['id']);
  principalOf(ctx);
  const document = await deps.readModel.transfer(transferId);
  if (!document) throw new ApiError('transfer_not_found', `transfer ${transferId} is unknown or not recorded yet`);
  const accounts = [document['accountId'], document['from'], document['to']].filter((a): a is string => typeof a === 'string');
  await assertOwnsAnyAccount(ctx, deps, accounts);
  ctx.body = document;
}
