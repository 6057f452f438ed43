// Server-Sent Events of one account's outcomes (the notification service of the design).
// Bounded everywhere: at most sseConnectionsMax connections, at most sseBufferMax events queued per
// connection while the client reads slower than events arrive (then it is disconnected: it reconnects
// and reads history from /v1/accounts/:id/transfers), a heartbeat comment every sseHeartbeatMs so that
// proxies keep the connection and dead clients are noticed, every stream ended on shutdown, and each one
// ended when the token that opened it expires (with a token_expired event: reconnect with a fresh token).
import { PassThrough } from 'node:stream';
import type { Context } from 'koa';
import type { Config } from '../config/config.ts';
import { ApiError } from '../problems/errors.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Principal } from './principal.ts';
import type { AccountEvent, OutcomeTracker } from '../tails/outcomes.ts';
import type { PrincipalQuotas } from './quotas.ts';

const RECONNECT_MS = 2000;
/** setTimeout's limit; a token valid for longer is re-checked then (the stream ends, the client reconnects). */
const TIMER_MAX_MS = 2 ** 31 - 1;

export class SseHub {
  readonly #config: Config;
  readonly #tracker: OutcomeTracker;
  readonly #quotas: PrincipalQuotas;
  readonly #closers = new Set<() => void>();

  constructor(config: Config, tracker: OutcomeTracker, metrics: Metrics, quotas: PrincipalQuotas) {
    this.#config = config;
    this.#tracker = tracker;
    this.#quotas = quotas;
    metrics.gaugeOf('bankstream_http_sse_connections', 'Open Server-Sent Events connections', () => this.#closers.size);
  }

  /** Answers the request with an event stream of the account's events until the principal's token expires; returns at once. */
  open(ctx: Context, accountId: string, principal: Principal): void {
    const { sseConnectionsMax } = this.#config.http;
    const expiresAtMs = principal.expiresAtMs;
    if (this.#closers.size >= sseConnectionsMax)
      throw new ApiError('too_many_requests', `more than ${sseConnectionsMax} event streams are open`, {
        retryAfterS: 5,
      });
    const release = this.#quotas.acquireStream(principal);
    const stream = new PassThrough();
    const connection = new SseConnection(stream, this.#config.http.sseBufferMax);
    const unsubscribe = this.#tracker.subscribe(accountId, (event) => connection.send(event));
    const heartbeat = setInterval(() => connection.comment('heartbeat'), this.#config.http.sseHeartbeatMs);
    const expiry = setTimeout(
      () => {
        connection.write(
          `event: token_expired\ndata: ${JSON.stringify({ detail: 'the token that opened this stream has expired; reconnect with a fresh one' })}\n\n`,
        );
        close();
      },
      Math.min(Math.max(0, expiresAtMs - Date.now()), TIMER_MAX_MS),
    );
    const close = () => {
      if (!this.#closers.delete(close)) return;
      release();
      clearInterval(heartbeat);
      clearTimeout(expiry);
      unsubscribe();
      connection.end();
    };
    this.#closers.add(close);
    ctx.req.on('close', close);
    stream.on('close', close);
    // A long-lived response: no socket inactivity timeout, the heartbeat keeps it alive.
    ctx.req.socket.setTimeout(0);
    ctx.req.socket.setNoDelay(true);
    ctx.status = 200;
    ctx.type = 'text/event-stream; charset=utf-8';
    ctx.set('Cache-Control', 'no-cache, no-transform');
    // nginx and similar buffer responses unless told not to.
    ctx.set('X-Accel-Buffering', 'no');
    ctx.body = stream;
    connection.write(`retry: ${RECONNECT_MS}\n: subscribed to account ${accountId}\n\n`);
  }

  /** Ends every stream (shutdown), so that the server can close. */
  closeAll(): void {
    for (const close of [...this.#closers]) close();
  }
}

class SseConnection {
  readonly #stream: PassThrough;
  readonly #bufferMax: number;
  readonly #queue: string[] = [];
  #blocked = false;
  #ended = false;

  constructor(stream: PassThrough, bufferMax: number) {
    this.#stream = stream;
    this.#bufferMax = bufferMax;
    stream.on('drain', () => this.#flush());
  }

  send(event: AccountEvent): void {
    this.write(`id: ${event.id}\nevent: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`);
  }

  /** A comment line: ignored by clients, keeps intermediaries from timing the connection out. */
  comment(text: string): void {
    if (!this.#blocked) this.write(`: ${text}\n\n`);
  }

  write(chunk: string): void {
    if (this.#ended) return;
    if (this.#blocked) {
      this.#queue.push(chunk);
      // The client cannot keep up: drop it rather than grow without bound.
      if (this.#queue.length > this.#bufferMax) this.#stream.destroy();
      return;
    }
    this.#blocked = !this.#stream.write(chunk);
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#stream.end();
  }

  #flush(): void {
    this.#blocked = false;
    while (this.#queue.length > 0 && !this.#blocked) this.#blocked = !this.#stream.write(this.#queue.shift()!);
  }
}
