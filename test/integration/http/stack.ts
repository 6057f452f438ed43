// A real stack for the HTTP tests: unique topics and app id on the local broker, a migrated throwaway
// database, users with known passwords, and in-process instances serving the API on ephemeral ports.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { type Instance, startInstance } from '../../../src/app/instance.ts';
import { type Config, loadConfig } from '../../../src/config/config.ts';
import { createLogger } from '../../../src/config/logger.ts';
import { type Role, createUser } from '../../../src/http/users.ts';
import { ensureTopics } from '../../../src/ops/topics.ts';
import { migrate } from '../../../src/sinks/migrate.ts';
import { deleteTopicsWithPrefix, prefixedEnv, uniquePrefix } from '../support/kafka.ts';
import { dropDatabase, uniqueDatabaseUrl } from '../support/postgres.ts';
import { adminToken } from '../support/tokens.ts';

export const PASSWORD = 'correct horse battery staple';
export const DEV_SECRET = 'test-secret-of-at-least-thirty-two-characters!';

export interface Stack {
  prefix: string;
  env: Record<string, string>;
  databaseUrl: string;
  instances: Instance[];
  start(extra?: Record<string, string>, options?: { sink?: boolean }): Promise<Instance>;
  addUser(id: string, role: Role): Promise<void>;
  cleanup(): Promise<void>;
}

export async function createStack(label: string, extraEnv: Record<string, string> = {}): Promise<Stack> {
  const prefix = uniquePrefix(label);
  const databaseUrl = uniqueDatabaseUrl(label);
  const stateDir = await mkdtemp(path.join(os.tmpdir(), `bankstream-${label}-`));
  const env = prefixedEnv(prefix, {
    PARTITIONS: '4',
    STATE_DIR: stateDir,
    DATABASE_URL: databaseUrl,
    HTTP_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    COMMIT_INTERVAL_MS: '50',
    SINK_BATCH_MS: '50',
    AUTH_DEV_SECRET: DEV_SECRET,
    LOG_LEVEL: process.env['TEST_LOG_LEVEL'] ?? 'warn',
    ...extraEnv,
  });
  await ensureTopics(loadConfig(env));
  await migrate({ databaseUrl });
  const instances: Instance[] = [];
  const stack: Stack = {
    prefix,
    env,
    databaseUrl,
    instances,
    async start(extra = {}, options = {}) {
      const config: Config = loadConfig({ ...env, ...extra });
      const instance = await startInstance({
        config,
        logger: createLogger(config.logLevel, { instance: config.instanceId }),
        sink: options.sink ?? true,
        http: true,
      });
      instances.push(instance);
      return instance;
    },
    async addUser(id, role) {
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      try {
        await createUser(client, { id, role, password: PASSWORD });
      } finally {
        await client.end();
      }
    },
    async cleanup() {
      await Promise.allSettled(instances.splice(0).map((i) => i.close()));
      await deleteTopicsWithPrefix(prefix).catch(() => undefined);
      await dropDatabase(databaseUrl).catch(() => undefined);
      await rm(stateDir, { recursive: true, force: true });
    },
  };
  return stack;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  body: unknown;
  text: string;
}

/** A small client for the API: JSON in, JSON (or problem+json) out. */
export async function call(
  baseUrl: string,
  method: string,
  route: string,
  options: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers['Authorization'] = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.raw !== undefined) body = options.raw;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type'))
    headers['Content-Type'] = 'application/json';
  const response = await fetch(`${baseUrl}${route}`, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}

export async function login(baseUrl: string, username: string, password = PASSWORD): Promise<string> {
  const response = await call(baseUrl, 'POST', '/v1/auth/token', { body: { username, password } });
  if (response.status !== 200) throw new Error(`login of ${username} failed: ${response.status} ${response.text}`);
  return (response.body as { access_token: string }).access_token;
}

/** Polls until the instance runs all its assigned tasks (ready) and its routing table knows every partition (admin details). */
export async function waitReady(baseUrl: string, timeoutMs = 60_000, partitions = 4): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = await call(baseUrl, 'GET', '/readyz', { token: await adminToken(DEV_SECRET) }).catch(() => undefined);
    const body = ready?.body as { ready?: boolean; routing?: Array<{ partitions: number[] }> } | undefined;
    const owned = new Set((body?.routing ?? []).flatMap((r) => r.partitions));
    if (ready?.status === 200 && owned.size === partitions) return;
    if (Date.now() > deadline) throw new Error(`${baseUrl} not ready after ${timeoutMs} ms: ${ready?.text}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
