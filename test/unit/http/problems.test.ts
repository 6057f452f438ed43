import { Router } from '@koa/router';
import Koa from 'koa';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readJsonObject } from '../../../src/http/body.ts';
import { PROBLEM_CODES } from '../../../src/problems/errors.ts';
import { Metrics } from '../../../src/metrics/metrics.ts';
import { errorHandler, requestContext } from '../../../src/http/middleware.ts';
import { type Served, serve } from './serve.ts';

const LIMIT = 1024;
let app: Served;
const logged: string[] = [];

beforeAll(async () => {
  const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(line) });
  const koa = new Koa();
  koa.silent = true;
  const router = new Router();
  router.post('/echo', async (ctx) => {
    ctx.body = await readJsonObject(ctx, LIMIT);
  });
  router.get('/boom', () => {
    throw new Error('secret database password in this message');
  });
  koa.use(requestContext(logger, new Metrics({ app: 'a', instance: 'i' }, { processMetrics: false })));
  koa.use(errorHandler());
  koa.use(router.routes());
  koa.use(router.allowedMethods({ throw: true }));
  app = await serve(koa.callback());
});

afterAll(async () => {
  await app.close();
});

async function problem(
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown>; type: string | null }> {
  const response = await fetch(`${app.url}${path}`, init);
  return {
    status: response.status,
    body: (await response.json()) as Record<string, unknown>,
    type: response.headers.get('content-type'),
  };
}

describe('problem+json errors', () => {
  it('should answer 500 without internals and log the error when a route throws', async () => {
    const { status, body, type } = await problem('/boom');

    expect(status).toBe(500);
    expect(type).toBe('application/problem+json');
    expect(body).toMatchObject({
      type: 'https://bankstream.dev/problems/internal',
      title: 'Internal error',
      status: 500,
      code: 'internal',
    });
    expect(JSON.stringify(body)).not.toContain('secret');
    expect(
      logged.some((line) => line.includes('secret database password') && line.includes(String(body['requestId']))),
    ).toBe(true);
  });

  it('should answer 404 not_found when no route matches', async () => {
    expect((await problem('/nowhere')).body).toMatchObject({ status: 404, code: 'not_found', instance: '/nowhere' });
  });

  it('should answer 405 method_not_allowed when the route exists for other methods', async () => {
    expect((await problem('/echo')).body).toMatchObject({ status: 405, code: 'method_not_allowed' });
  });

  it('should answer 415 when the body is not JSON by content type', async () => {
    const result = await problem('/echo', {
      method: 'POST',
      body: 'a=b',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    });

    expect(result.body).toMatchObject({ status: 415, code: 'unsupported_media_type' });
  });

  it('should answer 413 when the body is larger than the limit, declared or chunked', async () => {
    const big = JSON.stringify({ pad: 'x'.repeat(LIMIT) });
    const declared = await problem('/echo', {
      method: 'POST',
      body: big,
      headers: { 'Content-Type': 'application/json' },
    });
    const chunked = await problem('/echo', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode(big)), c.close()) }),
      duplex: 'half',
    } as RequestInit);

    expect(declared.body).toMatchObject({ status: 413, code: 'payload_too_large' });
    expect(chunked.body).toMatchObject({ status: 413, code: 'payload_too_large' });
  });

  it('should answer 400 malformed_json when the body does not parse, and 422 when it is not an object', async () => {
    const json = { 'Content-Type': 'application/json' };

    expect((await problem('/echo', { method: 'POST', body: '{"a":', headers: json })).body).toMatchObject({
      status: 400,
      code: 'malformed_json',
    });
    expect((await problem('/echo', { method: 'POST', body: '[1,2]', headers: json })).body).toMatchObject({
      status: 422,
      code: 'validation_failed',
    });
  });

  it('should give every problem code a 4xx or 5xx status and a title', () => {
    for (const [code, { status, title }] of Object.entries(PROBLEM_CODES)) {
      expect(status >= 400 && status < 600, code).toBe(true);
      expect(title.length, code).toBeGreaterThan(0);
    }
  });
});
