// What another instance answered to a proxied account read, checked before anything of it is passed on: the
// body is bounded, a 200 is rebuilt field by field (checkedView), and a problem answer becomes our own
// ApiError with only the codes, detail and Retry-After it may carry (remoteProblem).
import { currencyDigits, formatMoney } from '../bank/money.ts';
import type { Owner } from '../cluster/directory-records.ts';
import type { AccountView } from './account-view.ts';
import { ApiError, PROBLEM_CODES, type ProblemCode } from '../problems/errors.ts';

export const PROXY_RESPONSE_BYTES_MAX = 64 * 1024;

/** The body of a response, refusing (ApiError) more than `maxBytes`: a hostile or broken peer cannot fill memory. */
export async function readBounded(response: Response, maxBytes: number): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw new ApiError('bad_gateway', 'oversized');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  if (!response.body) return Buffer.alloc(0);
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > maxBytes) throw new ApiError('bad_gateway', 'oversized');
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

const MONEY = /^-?\d{1,40}(\.\d{1,6})?$/;
const HOLD_FIELDS = ['posted', 'pendingDebits', 'pendingCredits', 'available'] as const;

/** What an instance without holds means: nothing pending, available = balance + overdraft (same digits). */
function withoutHolds(currency: string, balance: string, overdraftLimit: string): { zero: string; available: string } {
  const digits = currencyDigits(currency) ?? 2;
  const minor = (text: string) => BigInt(text.replace('.', ''));
  return { zero: formatMoney(0n, digits), available: formatMoney(minor(balance) + minor(overdraftLimit), digits) };
}
const OFFSET = /^\d{1,20}$/;
const CURRENCY = /^[A-Z]{3}$/;
const ACCOUNT_ID = /^[^\u0000-\u001f\u007f]{1,256}$/u;

/**
 * The owner's 200 answer as an AccountView, every field checked and the object rebuilt, or undefined: only
 * the expected shape is passed on, and what identifies the read (account, partition, owner) must be ours.
 */
export function checkedView(
  body: Buffer,
  expected: { accountId: string; partition: number; owner: Owner; allowStale: boolean },
): AccountView | undefined {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const str = (value: unknown, pattern: RegExp): value is string => typeof value === 'string' && pattern.test(value);
  const position = v['position'] as Record<string, unknown> | undefined;
  const servedBy = v['servedBy'] as Record<string, unknown> | undefined;
  const stale = v['stale'] as Record<string, unknown> | undefined;
  const offsetOrNull = (value: unknown) => value === null || str(value, OFFSET);
  const valid =
    v['accountId'] === expected.accountId &&
    str(v['ownerId'], ACCOUNT_ID) &&
    str(v['currency'], CURRENCY) &&
    (v['status'] === 'open' || v['status'] === 'closed') &&
    str(v['balance'], MONEY) &&
    str(v['inFlight'], MONEY) &&
    // Absent from an instance of a version before holds (a rolling upgrade): filled in below.
    HOLD_FIELDS.every((field) => v[field] === undefined || str(v[field], MONEY)) &&
    str(v['overdraftLimit'], MONEY) &&
    typeof v['openedAt'] === 'string' &&
    Number.isFinite(Date.parse(v['openedAt'])) &&
    (v['closedAt'] === undefined ||
      (typeof v['closedAt'] === 'string' && Number.isFinite(Date.parse(v['closedAt'])))) &&
    typeof position === 'object' &&
    position !== null &&
    position['partition'] === expected.partition &&
    offsetOrNull(position['accounts']) &&
    offsetOrNull(position['balances']) &&
    typeof servedBy === 'object' &&
    servedBy !== null &&
    servedBy['instanceId'] === expected.owner.instanceId &&
    (stale === undefined ||
      (expected.allowStale &&
        typeof stale === 'object' &&
        stale !== null &&
        stale['standby'] === true &&
        str(stale['lagRecords'], OFFSET)));
  if (!valid) return undefined;
  const legacy = withoutHolds(v['currency'] as string, v['balance'] as string, v['overdraftLimit'] as string);
  const view: AccountView = {
    accountId: expected.accountId,
    ownerId: v['ownerId'] as string,
    currency: v['currency'] as string,
    status: v['status'] as AccountView['status'],
    balance: v['balance'] as string,
    inFlight: v['inFlight'] as string,
    posted: (v['posted'] as string | undefined) ?? (v['balance'] as string),
    pendingDebits: (v['pendingDebits'] as string | undefined) ?? legacy.zero,
    pendingCredits: (v['pendingCredits'] as string | undefined) ?? legacy.zero,
    available: (v['available'] as string | undefined) ?? legacy.available,
    overdraftLimit: v['overdraftLimit'] as string,
    openedAt: v['openedAt'] as string,
    position: {
      partition: expected.partition,
      accounts: position['accounts'] as string | null,
      balances: position['balances'] as string | null,
    },
    servedBy: { instanceId: expected.owner.instanceId, url: expected.owner.url },
  };
  if (v['closedAt'] !== undefined) view.closedAt = v['closedAt'] as string;
  if (stale !== undefined) view.stale = { standby: true, lagRecords: stale['lagRecords'] as string };
  return view;
}

// What an owner may answer besides 200: the account's rights (403), existence (404) and availability (429,
// 503), each with the code it stands for when the owner names none of that status.
const PASSED_STATUSES: ReadonlyMap<number, ProblemCode> = new Map([
  [403, 'forbidden'],
  [404, 'not_found'],
  [429, 'too_many_requests'],
  [503, 'partition_unavailable'],
]);
const DETAIL_CHARS_MAX = 500;
const RETRY_AFTER_S_MAX = 3600;

/**
 * Re-raises an owner's problem answer as our own ApiError: its code only when it is a known code of that
 * status, its detail bounded and without control characters, Retry-After only as a small number. Anything
 * else, a 401 included (the owner refused OUR credential: a CLUSTER_SECRET mismatch), is a 502.
 */
export function remoteProblem(owner: Owner, status: number, headers: Headers, body: Buffer): ApiError {
  if (status === 401)
    return new ApiError(
      'bad_gateway',
      `instance ${owner.instanceId} refused this instance's credential (is CLUSTER_SECRET the same on both?)`,
    );
  let code = PASSED_STATUSES.get(status);
  if (code === undefined) return new ApiError('bad_gateway', `instance ${owner.instanceId} answered ${status}`);
  let detail = `instance ${owner.instanceId} answered ${status}`;
  try {
    const problem = JSON.parse(body.toString('utf8')) as { code?: unknown; detail?: unknown };
    if (typeof problem !== 'object' || problem === null || Array.isArray(problem))
      throw new TypeError('not a problem document');
    if (
      typeof problem.code === 'string' &&
      Object.hasOwn(PROBLEM_CODES, problem.code) &&
      PROBLEM_CODES[problem.code as ProblemCode].status === status
    )
      code = problem.code as ProblemCode;
    if (typeof problem.detail === 'string')
      detail = problem.detail.replace(/[\u0000-\u001f\u007f]/gu, ' ').slice(0, DETAIL_CHARS_MAX);
  } catch {
    return new ApiError('bad_gateway', `instance ${owner.instanceId} answered ${status} without a problem document`);
  }
  const retryAfter = headers.get('retry-after');
  const retryAfterS =
    retryAfter !== null && /^\d{1,4}$/.test(retryAfter) ? Math.min(Number(retryAfter), RETRY_AFTER_S_MAX) : undefined;
  return new ApiError(code, detail, retryAfterS === undefined ? {} : { retryAfterS });
}
