// Balance reads through the HTTP API (GET /v1/accounts/:id) with autocannon, against the running engine
// instance: requests per second and latency percentiles over random funded accounts. When the instance
// serves no API yet, the phase says so instead of measuring (status "pending").
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/config/logger.ts';
import { type BenchEnvironment, REPO_ROOT } from '../environment.ts';
import { sleep } from '../series.ts';
import type { BenchSettings } from '../settings.ts';
import { accountPrefix } from './engine.ts';
import { spawnGenerator } from './generator.ts';

export type ApiResult =
  | { status: 'pending'; reason: string }
  | {
      status: 'measured';
      requestsPerSecond: number;
      p50Ms: number;
      p99Ms: number;
      p999Ms: number;
      requests: number;
      non2xx: number;
      errors: number;
      connections: number;
      durationS: number;
    };

const PROBE_TIMEOUT_MS = 2000;

export async function measureApi(bench: BenchEnvironment, settings: BenchSettings): Promise<ApiResult> {
  const base = `http://127.0.0.1:${bench.env['HTTP_PORT']}`;
  const sample = `/v1/accounts/${accountPrefix(bench)}-0`;
  let headers: Record<string, string> = {};
  let probe = await get(`${base}${sample}`, headers);
  if (probe === 'unreachable')
    return {
      status: 'pending',
      reason: 'the instance serves no HTTP API (src/http is not wired into `bankstream start` yet)',
    };
  if (probe === 401 || probe === 403) {
    const token = await devToken(bench);
    if (!token)
      return {
        status: 'pending',
        reason: `GET ${sample} answered ${probe} and no token could be issued (set BENCH_API_TOKEN)`,
      };
    headers = { authorization: `Bearer ${token}` };
    probe = await get(`${base}${sample}`, headers);
  }
  if (probe !== 200) return { status: 'pending', reason: `GET ${sample} answered ${probe}` };
  return runAutocannon(base, headers, bench, settings);
}

/** The same reads while the generator (its own process) keeps the engine at `ratePerSecond`. */
export async function measureApiUnderLoad(
  bench: BenchEnvironment,
  settings: BenchSettings,
  ratePerSecond: number,
): Promise<ApiResult & { loadPerSecond?: number }> {
  const generator = spawnGenerator(bench, settings, 'api-load', ratePerSecond, settings.apiS + LOAD_LEAD_S + 5);
  try {
    await sleep(LOAD_LEAD_S * 1000);
    generator.child.assertRunning();
    const result = await measureApi(bench, settings);
    generator.child.process.kill('SIGTERM');
    const load = await generator.result();
    return { ...result, loadPerSecond: load.ratePerSecond };
  } finally {
    await generator.child.stop(5000);
  }
}

/** The generator's start (a node process) and the engine settling into the rate, before reads start. */
const LOAD_LEAD_S = 3;

async function runAutocannon(
  base: string,
  headers: Record<string, string>,
  bench: BenchEnvironment,
  settings: BenchSettings,
): Promise<ApiResult> {
  // Loaded on demand (dependency: autocannon).
  const { default: autocannon } = await import('autocannon');
  const prefix = accountPrefix(bench);
  let next = 0;
  const result = await autocannon({
    url: base,
    connections: settings.apiConnections,
    duration: settings.apiS,
    headers,
    requests: [
      {
        method: 'GET',
        setupRequest: (request) => ({
          ...request,
          path: `/v1/accounts/${prefix}-${(next = (next + 7919) % settings.accounts)}`,
        }),
      },
    ],
  });
  const latency = result.latency as unknown as Record<string, number>;
  return {
    status: 'measured',
    requestsPerSecond: Math.round(result.requests.average),
    p50Ms: latency['p50'] ?? 0,
    p99Ms: latency['p99'] ?? 0,
    p999Ms: latency['p99_9'] ?? 0,
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    connections: settings.apiConnections,
    durationS: settings.apiS,
  };
}

async function get(url: string, headers: Record<string, string>): Promise<number | 'unreachable'> {
  try {
    const response = await fetch(url, { headers, signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 'unreachable';
  }
}

/**
 * A teller token: BENCH_API_TOKEN when given, else one signed with the instance's dev secret through the
 * API's own Authenticator (loaded by path: the HTTP module is optional for the bench).
 */
async function devToken(bench: BenchEnvironment): Promise<string | undefined> {
  if (process.env.BENCH_API_TOKEN) return process.env.BENCH_API_TOKEN;
  try {
    const url = pathToFileURL(path.join(REPO_ROOT, 'src', 'http', 'auth.ts')).href;
    const auth = (await import(url)) as {
      Authenticator?: new (
        config: unknown,
        logger: unknown,
      ) => { issue(subject: string, role: string): Promise<{ token: string }> };
    };
    const config = loadConfig(bench.env) as unknown as { auth?: unknown };
    if (!auth.Authenticator || config.auth === undefined) return undefined;
    const issued = await new auth.Authenticator(config.auth, createLogger('silent')).issue('bench', 'teller');
    return issued.token;
  } catch {
    return undefined;
  }
}
