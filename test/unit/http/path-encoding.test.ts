import http from 'node:http';
import { Router } from '@koa/router';
import fc from 'fast-check';
import Koa from 'koa';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../../src/metrics/metrics.ts';
import { errorHandler, requestContext } from '../../../src/http/middleware.ts';
import { decodePath, strictPathEncoding } from '../../../src/http/path-encoding.ts';
import { idParam } from '../../../src/http/validate.ts';
import { type Served, serve } from './serve.ts';

let app: Served;

beforeAll(async () => {
  const koa = new Koa();
  koa.silent = true;
  const router = new Router({ sensitive: true, strict: false });
  router.get('/v1/accounts/:id', (ctx) => {
    ctx.body = { id: idParam('id', ctx.params['id']) };
  });
  koa.use(
    requestContext(pino({ level: 'silent' }), new Metrics({ app: 'a', instance: 'i' }, { processMetrics: false })),
  );
  koa.use(errorHandler());
  koa.use(strictPathEncoding());
  koa.use(router.routes());
  app = await serve(koa.callback());
});

afterAll(async () => {
  await app.close();
});

/** A GET with the request target sent byte for byte (fetch would normalize it). */
function rawGet(target: string): Promise<{ status: number; body: Record<string, unknown>; type: string | undefined }> {
  return new Promise((resolve, reject) => {
    const url = new URL(app.url);
    const request = http.request(
      { host: url.hostname, port: url.port, method: 'GET', path: target, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
            type: response.headers['content-type'],
          }),
        );
      },
    );
    request.on('error', reject);
    request.end();
  });
}

// What may appear in a request target: unreserved, sub-delims, ":" "@", and "%" with (or without) hex.
const targetChar = fc.constantFrom(..."abcXYZ019-._~!$&'()*+,;=:@%%%%0123456789ABCDEFabcdef".split(''));
const percentEscape = fc.integer({ min: 0, max: 255 }).map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`);
const rawSegment = fc
  .array(fc.oneof(targetChar, percentEscape), { minLength: 1, maxLength: 12 })
  .map((parts) => parts.join(''));

describe('percent-encoding of path parameters', () => {
  it('should answer 400 problem+json when the path has malformed percent-encoding', async () => {
    for (const raw of ['%ZZ', '%', 'acc-%4', '%ED%A0%80', '%C0%AF', '%FF', 'a%2']) {
      const answer = await rawGet(`/v1/accounts/${raw}`);
      expect(answer.status, raw).toBe(400);
      expect(answer.type).toContain('application/problem+json');
      expect(answer.body).toMatchObject({ code: 'invalid_parameter', errors: [{ field: 'path' }] });
    }
  });

  it('should answer 400 naming the query when a query value has malformed percent-encoding', async () => {
    for (const query of ['cursor=%ZZ', 'a=1&b=%', 'x=%ED%A0%80']) {
      const answer = await rawGet(`/v1/accounts/acc-1?${query}`);
      expect(answer.status, query).toBe(400);
      expect(answer.body).toMatchObject({ code: 'invalid_parameter', errors: [{ field: 'query' }] });
    }
    expect((await rawGet('/v1/accounts/acc-1?cursor=abc%2D1&limit=2')).status).toBe(200);
  });

  it('should pass the decoded id to the route when the encoding is valid', async () => {
    expect((await rawGet('/v1/accounts/acc%2D1')).body).toEqual({ id: 'acc-1' });
  });

  it('should never use a raw escape as the id and never answer 5xx when the path is arbitrary', async () => {
    await fc.assert(
      fc.asyncProperty(rawSegment, async (raw) => {
        const answer = await rawGet(`/v1/accounts/${raw}`);
        const decoded = decodePath(raw);
        if (decoded === undefined) {
          expect(answer.status).toBe(400);
          expect(answer.body['code']).toBe('invalid_parameter');
        } else if (answer.status === 200) {
          expect(answer.body['id']).toBe(decoded);
        } else {
          // Valid encoding, but not an id (or a decoded "/" that routes elsewhere).
          expect([400, 404]).toContain(answer.status);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('should decode what encodeURIComponent wrote and never throw when the path is any Unicode', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 64 }),
        fc.string({ unit: 'binary', maxLength: 64 }),
        (text, raw) => {
          expect(decodePath(encodeURIComponent(text))).toBe(text);
          const decoded = decodePath(raw);
          if (decoded !== undefined) expect(decoded).toBe(decodeURIComponent(raw));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
