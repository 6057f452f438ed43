// The interactive-query poller of the scale-out test: GET /v1/accounts/:id on every running instance for
// random accounts at a bounded rate, every answer recorded with when it was sent and received. The checks
// run afterwards, against the balances changelog (see `answerViolations`).
import { partitionForKey } from '../../../src/kafka/partitioner.ts';

export type Phase = 'starting' | 'up' | 'down';

/** An instance as the test drives it: queried while starting or up; `down` from the moment it is signalled. */
export interface Target {
  name: string;
  url: string;
  phase: Phase;
}

export type AnswerKind = 'ok' | 'unavailable' | 'refused' | 'failure';

export interface Answer {
  /** The instance that was asked. */
  instance: string;
  accountId: string;
  partition: number;
  /** Milliseconds since the poller started. */
  sentMs: number;
  receivedMs: number;
  kind: AnswerKind;
  status?: number;
  /** 200 only: minor units, the instance that read its store, and the balances store position it reported. */
  balance?: bigint;
  inFlight?: bigint;
  servedBy?: string;
  position?: bigint;
  detail?: string;
}

export interface PollerOptions {
  accounts: string[];
  partitions: number;
  token: string;
  requestsPerSecond: number;
  /** Requests in flight at most; a tick finding the bound reached is skipped (and counted). */
  inFlightMax: number;
  timeoutMs: number;
  random: () => number;
}

/** Polls until stopped; targets can be added and change phase while it runs. */
export class Poller {
  readonly targets = new Map<string, Target>();
  readonly answers: Answer[] = [];
  readonly #options: PollerOptions;
  readonly #started = performance.now();
  readonly #pending = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #next = 0;
  skipped = 0;

  constructor(options: PollerOptions) {
    this.#options = options;
  }

  /** Milliseconds on the poller's timeline (the one of `Answer.sentMs`). */
  now(): number {
    return performance.now() - this.#started;
  }

  set(name: string, url: string, phase: Phase): void {
    this.targets.set(name, { name, url, phase });
  }

  phase(name: string, phase: Phase): void {
    const target = this.targets.get(name);
    if (target) target.phase = phase;
  }

  start(): void {
    this.#timer = setInterval(() => this.#tick(), Math.max(1, Math.round(1000 / this.#options.requestsPerSecond)));
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.allSettled([...this.#pending]);
  }

  #tick(): void {
    const live = [...this.targets.values()].filter((t) => t.phase !== 'down');
    if (live.length === 0) return;
    if (this.#pending.size >= this.#options.inFlightMax) {
      this.skipped++;
      return;
    }
    // Round robin over the instances, a random account each time: every instance is asked about every partition.
    const target = live[this.#next++ % live.length]!;
    const accountId = this.#options.accounts[Math.floor(this.#options.random() * this.#options.accounts.length)]!;
    const request = this.#ask(target, accountId).finally(() => this.#pending.delete(request));
    this.#pending.add(request);
  }

  async #ask(target: Target, accountId: string): Promise<void> {
    const phaseAtSend = target.phase;
    const base = {
      instance: target.name,
      accountId,
      partition: partitionForKey(accountId, this.#options.partitions),
      sentMs: this.now(),
    };
    let answer: Answer;
    try {
      const response = await fetch(`${target.url}/v1/accounts/${encodeURIComponent(accountId)}`, {
        headers: { Authorization: `Bearer ${this.#options.token}`, Accept: 'application/json' },
        signal: AbortSignal.timeout(this.#options.timeoutMs),
      });
      const text = await response.text();
      if (target.phase === 'starting') target.phase = 'up';
      answer = {
        ...base,
        receivedMs: this.now(),
        ...classify(response.status, response.headers.get('retry-after'), text, base.partition),
      };
    } catch (error) {
      const code = errorCode(error);
      // Refused (or cut) by an instance that is not up yet or was stopped meanwhile: told apart, not a failure.
      const expected = target.phase === 'down' || (phaseAtSend === 'starting' && code === 'ECONNREFUSED');
      answer = {
        ...base,
        receivedMs: this.now(),
        kind: expected ? 'refused' : 'failure',
        detail: `${code} (instance ${phaseAtSend} when asked)`,
      };
    }
    this.answers.push(answer);
  }
}

function classify(
  status: number,
  retryAfter: string | null,
  text: string,
  partition: number,
): Pick<Answer, 'kind' | 'status' | 'balance' | 'inFlight' | 'servedBy' | 'position' | 'detail'> {
  if (status === 503)
    return retryAfter === null
      ? { kind: 'failure', status, detail: `503 without Retry-After: ${text.slice(0, 200)}` }
      : { kind: 'unavailable', status };
  if (status !== 200) return { kind: 'failure', status, detail: text.slice(0, 200) };
  try {
    const body = JSON.parse(text) as {
      balance?: unknown;
      inFlight?: unknown;
      servedBy?: { instanceId?: unknown };
      position?: { partition?: unknown; balances?: unknown };
    };
    if (body.position?.partition !== partition)
      return {
        kind: 'failure',
        status,
        detail: `answered from partition ${String(body.position?.partition)}, the account is on ${partition}`,
      };
    const position = body.position.balances;
    return {
      kind: 'ok',
      status,
      balance: minorUnits(body.balance),
      inFlight: minorUnits(body.inFlight),
      servedBy: String(body.servedBy?.instanceId),
      position: typeof position === 'string' ? BigInt(position) : 0n,
    };
  } catch (error) {
    return {
      kind: 'failure',
      status,
      detail: `unreadable 200 answer (${(error as Error).message}): ${text.slice(0, 200)}`,
    };
  }
}

/** "-12.34" → -1234n; EUR and USD have two digits, and the API always writes both. */
function minorUnits(value: unknown): bigint {
  if (typeof value !== 'string' || !/^-?\d+\.\d{2}$/.test(value))
    throw new Error(`not an amount with two decimals: ${JSON.stringify(value)}`);
  return BigInt(value.replace('.', ''));
}

function errorCode(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    if (current.name === 'TimeoutError') return 'TIMEOUT';
    current = current.cause;
  }
  return error instanceof Error ? error.message : String(error);
}

/** One committed balances-changelog value of an account. */
export interface BalanceVersion {
  offset: bigint;
  balance: bigint;
  inFlight: bigint;
}

/**
 * Each 200 answer must show a state the account really had in the committed changelog, no later than the
 * position the answer reports, and no earlier than the latest position any answer about the same partition
 * had reported before this request was sent: a value from an aborted transaction is in no version, one from a
 * previous owner (stale) is before that bound. `history` lists each account's versions in offset order.
 */
export function answerViolations(answers: Answer[], history: Map<string, BalanceVersion[]>): string[] {
  const problems: string[] = [];
  const ok = answers.filter((a) => a.kind === 'ok').sort((x, y) => x.sentMs - y.sentMs);
  const byReceipt = [...ok].sort((x, y) => x.receivedMs - y.receivedMs);
  const floor = new Map<number, bigint>();
  let seen = 0;
  for (const answer of ok) {
    // The bound: positions of the answers about this partition received before this one was sent.
    for (; seen < byReceipt.length && byReceipt[seen]!.receivedMs < answer.sentMs; seen++) {
      const earlier = byReceipt[seen]!;
      if (earlier.position! > (floor.get(earlier.partition) ?? -1n)) floor.set(earlier.partition, earlier.position!);
    }
    const low = floor.get(answer.partition) ?? 0n;
    const high = answer.position!;
    const where = `${answer.accountId} (partition ${answer.partition}) asked ${answer.instance} at ${(answer.sentMs / 1000).toFixed(2)}s, served by ${answer.servedBy}`;
    if (high < low) {
      problems.push(`${where}: stale store, position ${high} behind ${low} already answered`);
      continue;
    }
    const states = statesBetween(history.get(answer.accountId) ?? [], low, high);
    if (!states.some((s) => s.balance === answer.balance && s.inFlight === answer.inFlight)) {
      const ever = (history.get(answer.accountId) ?? []).some(
        (s) => s.balance === answer.balance && s.inFlight === answer.inFlight,
      );
      problems.push(
        `${where}: balance ${answer.balance}/${answer.inFlight} minor units is ${ever ? 'not the state between positions ' + low + ' and ' + high : 'no value the account ever had'}`,
      );
    }
  }
  return problems;
}

/** The account's states at every position in [low, high]: the one in force at `low`, then each version before `high`. */
function statesBetween(
  versions: BalanceVersion[],
  low: bigint,
  high: bigint,
): Array<{ balance: bigint; inFlight: bigint }> {
  let atLow: { balance: bigint; inFlight: bigint } = { balance: 0n, inFlight: 0n };
  const out: Array<{ balance: bigint; inFlight: bigint }> = [];
  for (const v of versions) {
    if (v.offset < low) atLow = v;
    else if (v.offset < high) out.push(v);
  }
  return [atLow, ...out];
}

export interface InstanceCounts {
  ok: number;
  unavailable: number;
  refused: number;
  failure: number;
}

export function countsPerInstance(answers: Answer[]): Map<string, InstanceCounts> {
  const counts = new Map<string, InstanceCounts>();
  for (const a of answers) {
    const c = counts.get(a.instance) ?? { ok: 0, unavailable: 0, refused: 0, failure: 0 };
    c[a.kind]++;
    counts.set(a.instance, c);
  }
  return new Map([...counts].sort(([x], [y]) => x.localeCompare(y)));
}

/** Per partition, milliseconds from `atMs` until an answer sent after it came back 200 (undefined: never). */
export function servedAgain(answers: Answer[], atMs: number, partitions: number[]): Map<number, number | undefined> {
  const out = new Map<number, number | undefined>();
  for (const p of partitions) {
    const first = answers
      .filter((a) => a.partition === p && a.kind === 'ok' && a.sentMs >= atMs)
      .sort((x, y) => x.receivedMs - y.receivedMs)[0];
    out.set(p, first ? first.receivedMs - atMs : undefined);
  }
  return out;
}
