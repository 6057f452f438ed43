// Dev-mode tokens minted by a test that knows AUTH_DEV_SECRET (as an operator's tooling would): an admin
// token reads the management details (/readyz with routing, /metrics) on the API port.
import { SignJWT } from 'jose';

export async function devToken(
  secret: string,
  subject: string,
  role: 'customer' | 'teller' | 'admin',
  ttlS = 3600,
): Promise<string> {
  return new SignJWT({ role })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(subject)
    .setIssuer('bankstream')
    .setAudience('bankstream-api')
    .setIssuedAt()
    .setExpirationTime(`${ttlS}s`)
    .sign(new TextEncoder().encode(secret));
}

const cache = new Map<string, Promise<string>>();

/** One admin token per secret for the test run. */
export function adminToken(secret: string): Promise<string> {
  let token = cache.get(secret);
  if (!token) cache.set(secret, (token = devToken(secret, 'test-operator', 'admin')));
  return token;
}

/** A token from POST /v1/auth/token of a running instance (a dev-mode login), or an error naming the answer. */
export async function login(baseUrl: string, username: string, password: string): Promise<string> {
  const response = await fetch(`${baseUrl}/v1/auth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const body = (await response.json()) as { access_token?: string };
  if (response.status !== 200 || !body.access_token)
    throw new Error(`login failed: ${response.status} ${JSON.stringify(body)}`);
  return body.access_token;
}
