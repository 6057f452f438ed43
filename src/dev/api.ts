// What `bankstream dev` tells about the instance's HTTP API: whether it answers, and a ready-made
// token. In dev auth mode the API verifies HS256 tokens with AUTH_DEV_SECRET; bankstream dev sets
// that secret for its instance (kept in <home>/auth-dev-secret so tokens survive a restart) and signs
// the token with the same Authenticator the API uses, so it needs no round trip and no password.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import { Authenticator } from '../http/auth.ts';
import { DEMO_PASSWORD } from './demo.ts';
import type { DevReporter } from './process.ts';

export interface ApiAccess {
  baseUrl: string;
  /** GET /healthz answered 200. */
  up: boolean;
  token: string | undefined;
  /** Who the token is for and how long it lasts, or why there is none. */
  tokenNote: string;
}

/** The demo token's subject and role: an admin reads every account. */
export const TOKEN_SUBJECT = 'admin';
const HEALTH_WAIT_MS = 3000;

/** AUTH_DEV_SECRET for the dev instance: read from <home>/auth-dev-secret, created (mode 600) on first use. */
export async function devAuthSecret(home: string): Promise<string> {
  return devSecret(path.join(home, 'auth-dev-secret'));
}

/**
 * CLUSTER_SECRET for the dev instance (it signs the internal legs and changelog records): read from
 * <home>/cluster-secret, created (mode 600) on first use and kept by --reset, because the changelogs
 * in the broker stay signed with it.
 */
export async function devClusterSecret(home: string): Promise<{ secret: string; file: string }> {
  const file = path.join(home, 'cluster-secret');
  return { secret: await devSecret(file), file };
}

async function devSecret(file: string): Promise<string> {
  const home = path.dirname(file);
  const existing = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (existing.length >= 32) return existing;
  const secret = randomBytes(32).toString('base64url');
  await mkdir(home, { recursive: true });
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return secret;
}

/** The URL a person on this machine uses (a 0.0.0.0 / :: listener is reached on the loopback). */
export function localApiUrl(config: Config): string {
  const host = config.httpHost === '0.0.0.0' || config.httpHost === '::' ? '127.0.0.1' : config.httpHost;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.httpPort}`;
}

/** True once GET /healthz answers 200, polled for up to `waitMs`. */
export async function apiAnswers(baseUrl: string, waitMs = HEALTH_WAIT_MS): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  do {
    try {
      const response = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.ok) return true;
    } catch {
      // not listening (yet)
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  } while (Date.now() < deadline);
  return false;
}

/**
 * Whether the API answers, and an admin token: from POST /v1/auth/token with the demo admin's password
 * when the API is up and the demo users exist (the path a client takes), else signed here with the
 * instance's dev secret (valid as soon as the API serves).
 */
export async function describeApi(
  config: Config,
  logger: Logger,
  reporter: DevReporter,
  demoUsers: boolean,
): Promise<ApiAccess> {
  const baseUrl = localApiUrl(config);
  const up = await apiAnswers(baseUrl);
  if (!up) reporter.note(`the HTTP API does not answer on ${baseUrl}/healthz`);
  if (config.auth.mode !== 'dev') {
    return {
      baseUrl,
      up,
      token: undefined,
      tokenNote: `no token: AUTH_JWKS_URL is set, tokens come from ${config.auth.jwksUrl}'s issuer`,
    };
  }
  if (up && demoUsers) {
    const issued = await login(baseUrl, TOKEN_SUBJECT, DEMO_PASSWORD).catch((error: unknown) => {
      reporter.note(`POST /v1/auth/token failed (${(error as Error).message}); signing the token here instead`);
      return undefined;
    });
    if (issued)
      return {
        baseUrl,
        up,
        token: issued.token,
        tokenNote: `user ${TOKEN_SUBJECT}, role admin, valid ${issued.expiresInS} s`,
      };
  }
  const issued = await new Authenticator(config.auth, logger).issue(TOKEN_SUBJECT, 'admin');
  return {
    baseUrl,
    up,
    token: issued.token,
    tokenNote: `subject ${TOKEN_SUBJECT}, role admin, valid ${issued.expiresInS} s`,
  };
}

async function login(
  baseUrl: string,
  username: string,
  password: string,
): Promise<{ token: string; expiresInS: number }> {
  const response = await fetch(`${baseUrl}/v1/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
    signal: AbortSignal.timeout(5000),
  });
  const body = (await response.json().catch(() => ({}))) as {
    access_token?: unknown;
    expires_in?: unknown;
    detail?: unknown;
  };
  if (!response.ok || typeof body.access_token !== 'string')
    throw new Error(`HTTP ${response.status}${typeof body.detail === 'string' ? `: ${body.detail}` : ''}`);
  return { token: body.access_token, expiresInS: typeof body.expires_in === 'number' ? body.expires_in : 0 };
}
