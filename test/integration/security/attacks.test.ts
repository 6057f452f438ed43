// The security suite (issue 15, docs/security.md): one named test per attack on the HTTP trust boundary,
// each against a real instance (real broker, real PostgreSQL), each refused.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Instance } from '../../../src/app/instance.ts';
import { clusterKeysFromSecret } from '../../../src/config/cluster-key.ts';
import { instancesTopic } from '../../../src/config/config.ts';
import { INSTANCE_CALL_HEADER, signInstanceCall } from '../../../src/http/instance-call.ts';
import { produce, waitFor } from '../../helpers/kafka.ts';
import { DEV_SECRET, PASSWORD, type Stack, call, createStack, login, waitReady } from '../http/stack.ts';
import { adminToken } from '../support/tokens.ts';

let stack: Stack;
let instance: Instance;
let url: string;
let teller: string;
let alice: string;
const key = new TextEncoder().encode(DEV_SECRET);
const nowS = () => Math.floor(Date.now() / 1000);

/** A dev-mode token with every claim right unless the attack changes one. */
function token(
  change: (jwt: SignJWT) => SignJWT = (jwt) => jwt,
  claims: Record<string, unknown> = { role: 'teller' },
  signingKey = key,
): Promise<string> {
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject('mallory')
    .setIssuer('bankstream')
    .setAudience('bankstream-api')
    .setIssuedAt()
    .setExpirationTime('1h');
  return change(jwt).sign(signingKey);
}

async function expectRefusedToken(bearer: string, reason?: RegExp): Promise<void> {
  const response = await call(url, 'GET', '/v1/accounts/atk-alice', { token: bearer });
  expect(response.status).toBe(401);
  expect(response.body).toMatchObject({ code: 'invalid_token' });
  if (reason) expect((response.body as { detail: string }).detail).toMatch(reason);
}

beforeAll(async () => {
  stack = await createStack('secattack', {
    HTTP_SSE_STREAMS_PER_PRINCIPAL_MAX: '1',
    HTTP_COMMANDS_PER_PRINCIPAL_PER_S: '5',
  });
  instance = await stack.start({ INSTANCE_ID: 'atk-0' });
  url = instance.http!.url;
  await waitReady(url);
  for (const [id, role] of [
    ['teller1', 'teller'],
    ['alice', 'customer'],
    ['bob', 'customer'],
    ['carol', 'customer'],
  ] as const)
    await stack.addUser(id, role);
  teller = await login(url, 'teller1');
  alice = await login(url, 'alice');
  for (const [accountId, ownerId] of [
    ['atk-alice', 'alice'],
    ['atk-bob', 'bob'],
  ]) {
    const opened = await call(url, 'POST', '/v1/accounts?wait=15000', {
      token: teller,
      body: { accountId, ownerId, currency: 'EUR' },
    });
    expect(opened.status, opened.text).toBe(201);
  }
});

afterAll(async () => {
  await stack?.cleanup();
});

describe('attacks on the HTTP trust boundary', () => {
  it('should refuse a request when it carries no token', async () => {
    const response = await call(url, 'GET', '/v1/accounts/atk-alice');
    expect(response.status).toBe(401);
    expect(response.body).toMatchObject({ code: 'unauthenticated' });
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  it('should refuse a token when it has expired', async () => {
    await expectRefusedToken(
      await token((jwt) => jwt.setIssuedAt(nowS() - 7200).setExpirationTime(nowS() - 3600)),
      /expired/,
    );
  });

  it('should refuse a token when it is not valid yet (nbf in the future)', async () => {
    await expectRefusedToken(await token((jwt) => jwt.setNotBefore(nowS() + 3600)), /nbf/);
  });

  it('should refuse a token when it names another issuer', async () => {
    await expectRefusedToken(await token((jwt) => jwt.setIssuer('https://evil.example')), /iss/);
  });

  it('should refuse a token when it is for another audience', async () => {
    await expectRefusedToken(await token((jwt) => jwt.setAudience('another-api')), /aud/);
  });

  it('should refuse a token when its signature was made with another key', async () => {
    await expectRefusedToken(
      await token(undefined, undefined, new TextEncoder().encode('an-attacker-key-of-at-least-32-characters!!')),
    );
  });

  it('should refuse a token when it uses alg none', async () => {
    const unsecured = new UnsecuredJWT({ role: 'admin' })
      .setSubject('mallory')
      .setIssuer('bankstream')
      .setAudience('bankstream-api')
      .setIssuedAt()
      .setExpirationTime('1h')
      .encode();
    await expectRefusedToken(unsecured);
  });

  it("should refuse a customer when the customer reads or debits another customer's account", async () => {
    const read = await call(url, 'GET', '/v1/accounts/atk-bob', { token: alice });
    const debit = await call(url, 'POST', '/v1/transfers', {
      token: alice,
      body: { transferId: 'atk-steal', from: 'atk-bob', to: 'atk-alice', amount: '1.00', currency: 'EUR' },
    });
    const events = await call(url, 'GET', '/v1/accounts/atk-bob/transfers', { token: alice });

    expect([read.status, debit.status, events.status]).toEqual([403, 403, 403]);
  });

  it('should refuse a forged instance credential when it is signed with another key or sent to a route that takes none', async () => {
    const principal = { subject: 'mallory', role: 'admin' as const, expiresAtMs: Date.now() + 60_000 };
    const forgedKeys = clusterKeysFromSecret('an-attacker-cluster-secret-of-32-chars!!');
    const callTo = { caller: 'x', target: 'atk-0', method: 'GET', path: '/v1/accounts/atk-bob' };
    const forged = await call(url, 'GET', '/v1/accounts/atk-bob', {
      headers: { [INSTANCE_CALL_HEADER]: signInstanceCall(forgedKeys, principal, callTo) },
    });
    const elsewhere = await call(url, 'GET', '/v1/transfers/atk-x', {
      headers: {
        [INSTANCE_CALL_HEADER]: signInstanceCall(forgedKeys, principal, { ...callTo, path: '/v1/transfers/atk-x' }),
      },
    });

    expect(forged.status).toBe(401);
    expect((forged.body as { detail: string }).detail).toMatch(/does not verify/);
    expect(elsewhere.status).toBe(401);
  });

  it('should ignore and count a forged directory record when it points at a listener of the attacker', async () => {
    const requests: string[] = [];
    const trap = http.createServer((req, res) => (requests.push(req.url ?? ''), res.end('{}')));
    await new Promise<void>((resolve) => trap.listen({ host: '127.0.0.1', port: 0 }, resolve));
    try {
      const trapUrl = `http://127.0.0.1:${(trap.address() as AddressInfo).port}`;
      const record = {
        instanceId: 'evil',
        url: trapUrl,
        generation: Number.MAX_SAFE_INTEGER,
        partitions: [0, 1, 2, 3],
        state: 'RUNNING',
        at: new Date().toISOString(),
      };
      await produce([
        { topic: instancesTopic(stack.prefix), key: Buffer.from('evil'), value: Buffer.from(JSON.stringify(record)) },
      ]);
      const admin = await adminToken(DEV_SECRET);
      await waitFor(
        'the forged record counted',
        async () => {
          const metrics = (await call(url, 'GET', '/metrics', { token: admin })).text;
          return /^bankstream_directory_records_rejected_total\{[^}]*reason="unsigned"[^}]*\} [1-9]/m.test(metrics)
            ? true
            : undefined;
        },
        20_000,
        200,
      );
      const routing = (
        (await call(url, 'GET', '/readyz', { token: admin })).body as { routing: Array<{ instanceId: string }> }
      ).routing;

      expect(routing.map((r) => r.instanceId)).toEqual(['atk-0']);
      expect((await call(url, 'GET', '/v1/accounts/atk-alice', { token: alice })).status).toBe(200);
      expect(requests).toEqual([]);
    } finally {
      trap.closeAllConnections();
      await new Promise((resolve) => trap.close(resolve));
    }
  });

  it('should throttle a password brute force with 429 and Retry-After', async () => {
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 12; i++) {
      const response = await call(url, 'POST', '/v1/auth/token', {
        body: { username: 'carol', password: `guess-number-${i}` },
      });
      statuses.push(response.status);
      if (response.status === 429) retryAfter ??= response.headers.get('retry-after');
    }

    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(statuses).toContain(429);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect((await call(url, 'POST', '/v1/auth/token', { body: { username: 'bob', password: PASSWORD } })).status).toBe(
      200,
    );
  });

  it('should refuse a quota exhaustion when one principal opens more event streams or sends more commands than its quota', async () => {
    const controller = new AbortController();
    const first = await fetch(`${url}/v1/accounts/atk-alice/events`, {
      headers: { Authorization: `Bearer ${alice}` },
      signal: controller.signal,
    });
    const second = await call(url, 'GET', '/v1/accounts/atk-alice/events', { token: alice });
    controller.abort();
    const flood = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        call(url, 'POST', '/v1/deposits', {
          token: teller,
          body: { transferId: `atk-flood-${i}`, accountId: 'atk-alice', amount: '1.00', currency: 'EUR' },
        }),
      ),
    );

    expect(first.status).toBe(200);
    expect(second.status).toBe(429);
    expect(second.body).toMatchObject({ code: 'quota_exceeded', quota: 'sse_streams_per_principal' });
    expect(flood.some((r) => r.status === 429 && (r.body as { quota?: string }).quota === 'commands_per_second')).toBe(
      true,
    );
  });

  it('should refuse unauthenticated use of the management surface', async () => {
    const metrics = await call(url, 'GET', '/metrics');
    const readyz = await call(url, 'GET', '/readyz');
    const customer = await call(url, 'GET', '/metrics', { token: alice });

    expect(metrics.status).toBe(401);
    expect(readyz.body).toEqual({ ready: true });
    expect(readyz.text).not.toContain('127.0.0.1');
    expect(customer.status).toBe(403);
  });
});
