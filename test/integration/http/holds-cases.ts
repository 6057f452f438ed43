// The hold routes on the API test's stack (api.test.ts): one in-process instance on the real broker and
// a real PostgreSQL database, so placing, posting, voiding and expiring holds run through the processor,
// the sink's holds table and the outcome tail (SSE) for real. Registered by api.test.ts, sharing its stack.
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../helpers/kafka.ts';
import { call } from './stack.ts';

type Json = Record<string, unknown>;

export interface HoldCaseContext {
  url: string;
  teller: string;
  alice: string;
  bob: string;
  admin: string;
  openAccount(accountId: string, ownerId: string): Promise<void>;
  deposit(transferId: string, accountId: string, amount: string): Promise<Json>;
}

const hold = (transferId: string, from: string, to: string, amount: string, extra: Json = {}) => ({
  transferId,
  from,
  to,
  amount,
  currency: 'EUR',
  timeoutMs: 600_000,
  ...extra,
});

/** Reads an event stream until `done(text)` holds (or 20 s pass); returns the text read. */
async function readEvents(response: Response, done: (text: string) => boolean): Promise<string> {
  const reader = response.body!.getReader();
  let text = '';
  const deadline = Date.now() + 20_000;
  while (!done(text) && Date.now() < deadline) {
    const chunk = await Promise.race([
      reader.read(),
      new Promise<{ done: true; value: undefined }>((r) =>
        setTimeout(() => r({ done: true, value: undefined }), 20_000),
      ),
    ]);
    if (chunk.done) break;
    text += new TextDecoder().decode(chunk.value);
  }
  await reader.cancel();
  return text;
}

function holdEvents(text: string): Json[] {
  return [...text.matchAll(/event: hold\ndata: (.*)\n/g)].map((m) => JSON.parse(m[1]!) as Json);
}

export function describeHolds(ctx: () => HoldCaseContext): void {
  const get = (route: string, token: string) => call(ctx().url, 'GET', route, { token });
  const post = (route: string, token: string, body?: unknown, headers?: Record<string, string>) =>
    call(ctx().url, 'POST', route, { token, ...(body === undefined ? {} : { body }), ...(headers ? { headers } : {}) });

  /** The hold as the sink recorded it, once it has `status`. */
  async function holdOf(holdId: string, status: string, token = ctx().admin, query = ''): Promise<Json> {
    return waitFor(
      `hold ${holdId} ${status}`,
      async () => {
        const response = await get(`/v1/holds/${holdId}${query}`, token);
        return response.status === 200 && (response.body as Json)['status'] === status
          ? (response.body as Json)
          : undefined;
      },
      15_000,
      50,
    );
  }

  async function account(accountId: string): Promise<Json> {
    const response = await get(`/v1/accounts/${accountId}`, ctx().teller);
    expect(response.status, response.text).toBe(200);
    return response.body as Json;
  }

  describe('holds', () => {
    it('should place, partly post, void and expire holds with SSE hold events and read their state from Postgres', async () => {
      const { url, alice, openAccount, deposit } = ctx();
      await openAccount('hold-a', 'alice');
      await openAccount('hold-b', 'bob');
      await deposit('hold-dep', 'hold-a', '100.00');
      const stream = await fetch(`${url}/v1/accounts/hold-a/events`, { headers: { Authorization: `Bearer ${alice}` } });
      expect(stream.status).toBe(200);
      const events = readEvents(stream, (text) => holdEvents(text).length >= 6);

      const placed = await post('/v1/holds?wait=10000', alice, hold('h-card', 'hold-a', 'hold-b', '40'));
      expect(placed.status, placed.text).toBe(200);
      expect(placed.body).toMatchObject({ transferId: 'h-card', type: 'hold', status: 'pending', amount: '40.00' });
      expect(placed.headers.get('location')).toBe('/v1/holds/h-card?account=hold-a');
      await waitFor(
        'available 60.00',
        async () => (await account('hold-a'))['available'] === '60.00' || undefined,
        5000,
        20,
      );
      expect(await account('hold-a')).toMatchObject({ posted: '100.00', pendingDebits: '40.00', available: '60.00' });
      expect(await holdOf('h-card', 'pending', alice)).toMatchObject({ from: 'hold-a', to: 'hold-b', amount: '40.00' });

      // No `from` in the body: the route finds it in the holds row.
      const posted = await post('/v1/holds/h-card/post?wait=10000', alice, {
        transferId: 'p-card',
        amount: '25.00',
        currency: 'EUR',
      });
      expect(posted.status, posted.text).toBe(200);
      expect(posted.body).toMatchObject({ holdId: 'h-card', status: 'posted', amount: '25.00', heldAmount: '40.00' });
      const again = await post('/v1/holds/h-card/post?wait=10000', alice, { transferId: 'p-card-2', from: 'hold-a' });
      expect(again.body).toMatchObject({ status: 'failed', code: 'hold_already_posted' });
      expect(await holdOf('h-card', 'posted')).toMatchObject({
        amount: '40.00',
        postedAmount: '25.00',
        releasedAmount: '15.00',
        resolvedBy: 'p-card',
      });

      await post('/v1/holds?wait=10000', alice, hold('h-void', 'hold-a', 'hold-b', '10.00'));
      // The body left out, the transferId in the Idempotency-Key header.
      const voided = await post('/v1/holds/h-void/void?wait=10000', alice, undefined, { 'Idempotency-Key': 'v-void' });
      expect(voided.status, voided.text).toBe(200);
      expect(voided.body).toMatchObject({ transferId: 'v-void', status: 'voided', amount: '10.00' });

      await post('/v1/holds?wait=10000', alice, hold('h-lapse', 'hold-a', 'hold-b', '5.00', { timeoutMs: 300 }));
      expect(await holdOf('h-lapse', 'expired')).toMatchObject({ amount: '5.00', status: 'expired' });
      // hold-b is credited on its own partition: the post's credit leg and the lapse's release of its
      // pending credit arrive as separate legs, so wait for both rather than for the first.
      await waitFor(
        'balances settled',
        async () => {
          const b = await account('hold-b');
          return (b['posted'] === '25.00' && b['pendingCredits'] === '0.00') || undefined;
        },
        10_000,
        20,
      );
      expect(await account('hold-a')).toMatchObject({ posted: '75.00', pendingDebits: '0.00', available: '75.00' });
      expect(await account('hold-b')).toMatchObject({ posted: '25.00', pendingCredits: '0.00' });

      const seen = holdEvents(await events).map((e) => [e['holdId'], e['status'], e['amount']]);
      expect(seen).toEqual([
        ['h-card', 'pending', '40.00'],
        ['h-card', 'posted', '25.00'],
        ['h-void', 'pending', '10.00'],
        ['h-void', 'voided', '10.00'],
        ['h-lapse', 'pending', '5.00'],
        ['h-lapse', 'expired', '5.00'],
      ]);
    });

    it('should keep roles as for transfers and answer 404 for an unknown hold', async () => {
      const { alice, bob, teller, admin, openAccount, deposit } = ctx();
      await openAccount('hold-roles', 'alice');
      await deposit('hold-roles-dep', 'hold-roles', '10.00');
      const stolen = await post('/v1/holds', bob, hold('h-steal', 'hold-roles', 'hold-b', '1.00'));
      const byTeller = await post('/v1/holds', teller, hold('h-teller', 'hold-roles', 'hold-b', '1.00'));
      expect([stolen.status, byTeller.status]).toEqual([403, 403]);
      const mine = await post('/v1/holds?wait=10000', alice, hold('h-mine', 'hold-roles', 'hold-a', '1.00'));
      expect(mine.body).toMatchObject({ status: 'pending' });
      await holdOf('h-mine', 'pending');
      expect((await post('/v1/holds/h-mine/void', bob, { transferId: 'v-bob' })).status).toBe(403);
      expect((await post('/v1/holds/h-mine/post', bob, { transferId: 'p-bob', from: 'hold-roles' })).status).toBe(403);
      expect((await get('/v1/holds/h-mine', bob)).status).toBe(403);
      expect((await get('/v1/holds/h-mine', teller)).status).toBe(200);
      const unknown = await get('/v1/holds/h-nobody', admin);
      expect(unknown.status).toBe(404);
      expect(unknown.body).toMatchObject({ code: 'hold_not_found' });
      expect((await post('/v1/holds/h-nobody/void', admin, { transferId: 'v-x' })).body).toMatchObject({
        code: 'hold_not_found',
      });
    });

    it('should answer a resent hold with its outcome, 409 when its fields differ, and 409 for an id on two accounts', async () => {
      const { alice, admin, openAccount, deposit } = ctx();
      await openAccount('hold-dup', 'alice');
      await deposit('hold-dup-dep', 'hold-dup', '10.00');
      const body = hold('h-dup', 'hold-dup', 'hold-b', '2.50');
      const first = await post('/v1/holds?wait=10000', alice, body);
      const second = await post('/v1/holds?wait=10000', alice, { ...body, amount: '2.5' });
      expect(second.body).toEqual(first.body);
      const conflict = await post('/v1/holds?wait=10000', alice, { ...body, amount: '3.00' });
      expect(conflict.status).toBe(409);
      expect(conflict.body).toMatchObject({ code: 'idempotency_conflict' });
      // The same hold id placed on another account is another hold.
      await post('/v1/holds?wait=10000', admin, hold('h-dup', 'hold-a', 'hold-b', '1.00'));
      await holdOf('h-dup', 'pending', admin, '?account=hold-a');
      const ambiguous = await get('/v1/holds/h-dup', admin);
      expect(ambiguous.status).toBe(409);
      expect(ambiguous.body).toMatchObject({ code: 'hold_id_ambiguous' });
      expect(((ambiguous.body as Json)['holds'] as Json[]).map((h) => h['from']).sort()).toEqual([
        'hold-a',
        'hold-dup',
      ]);
      expect((await get('/v1/holds/h-dup?account=hold-dup', alice)).body).toMatchObject({ amount: '2.50' });
    });

    it('should answer hostile hold input with a clear 4xx problem and never produce it', async () => {
      const { url, alice } = ctx();
      const base = hold('h-bad', 'hold-a', 'hold-b', '1.00');
      const cases: Array<[string, unknown, number, string]> = [
        ['a JSON number amount', { ...base, amount: 1 }, 422, 'amount'],
        ['timeoutMs as a string', { ...base, timeoutMs: '1000' }, 422, 'timeoutMs'],
        ['timeoutMs of 0', { ...base, timeoutMs: 0 }, 422, 'timeoutMs'],
        ['timeoutMs above 30 days', { ...base, timeoutMs: 30 * 86_400_000 + 1 }, 422, 'timeoutMs'],
        ['both deadlines', { ...base, expiresAt: '2099-01-01T00:00:00Z' }, 422, 'expiresAt'],
        ['a past expiresAt', { ...base, timeoutMs: undefined, expiresAt: '2020-01-01T00:00:00Z' }, 422, 'expiresAt'],
        ['an unknown field', { ...base, holdId: 'x' }, 422, 'holdId'],
        ['a bad id', { ...base, from: 'a b' }, 422, 'from'],
      ];
      for (const [what, body, status, field] of cases) {
        const response = await post('/v1/holds', alice, body);
        expect(response.status, what).toBe(status);
        expect(response.headers.get('content-type'), what).toContain('application/problem+json');
        expect(JSON.stringify((response.body as Json)['errors']), what).toContain(field);
      }
      const voidAmount = await post('/v1/holds/h-card/void', alice, { transferId: 'v-amt', amount: '1.00' });
      expect(voidAmount.status).toBe(422);
      const big = await call(url, 'POST', '/v1/holds', {
        token: alice,
        raw: JSON.stringify({ ...base, reference: 'x'.repeat(70_000) }),
      });
      expect(big.status).toBe(413);
      expect((await call(url, 'POST', '/v1/holds', { token: alice, raw: '{"amount":' })).status).toBe(400);
      const text = await call(url, 'POST', '/v1/holds', {
        token: alice,
        raw: 'x',
        headers: { 'Content-Type': 'text/plain' },
      });
      expect(text.status).toBe(415);
      expect((await get('/v1/holds/%20x', alice)).status).toBe(400);
      // None of them reached the processor: the hold id is unknown.
      expect((await get('/v1/holds/h-bad', ctx().admin)).status).toBe(404);
    });
  });
}
