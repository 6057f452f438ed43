// runLoad: opens and funds accounts, then sends transfers at a target rate for a duration or a count.
//   1. setup (optional): every open_account, drained; every deposit, drained; a settle pause so the
//      processor applies them before transfers reach other partitions;
//   2. transfers: paced by the schedule `rate × elapsed` (or as fast as the producer goes), a mix of
//      valid and deliberately invalid commands, until the count, the duration or the abort signal;
//   3. drain what is in flight (bounded) and report what the broker acknowledged.
import { resolveLoadOptions, type ResolvedLoadOptions } from './options.ts';
import { LoadProducer } from './producer.ts';
import type { CommandKind, LoadOptions, LoadResult, SentCommand } from './types.ts';
import { type LoadMessage, Workload } from './workload.ts';

/** A paced loop sleeps at least this long, so a slow rate still sends batches rather than single records. */
const TICK_MS = 5;
const DRAIN_TIMEOUT_MS = 60_000;

interface Tally {
  byKind: Partial<Record<CommandKind, number>>;
  expected: LoadResult['expected'];
  ids: SentCommand[] | undefined;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const o = resolveLoadOptions(options);
  const workload = new Workload(o);
  const producer = await LoadProducer.connect({
    brokers: o.brokers,
    topic: o.topic,
    clientId: o.clientId,
    inflightBatchesMax: o.inflightBatchesMax,
    ...(o.security ? { security: o.security } : {}),
  });
  const tally: Tally = {
    byKind: {},
    expected: { transfers: 0, failed: {}, dlq: 0 },
    ids: o.recordIds ? [] : undefined,
  };
  try {
    const setup = o.setup ? await runSetup(o, workload, producer, tally) : { accounts: 0, deposits: 0, durationMs: 0 };
    const errorsBefore = producer.errors;
    const ackedBefore = producer.acked;
    const started = performance.now();
    const aborted = await runTransfers(o, workload, producer, tally, started);
    await producer.drain(DRAIN_TIMEOUT_MS);
    const durationMs = performance.now() - started;
    const sent = producer.acked - ackedBefore;
    o.onProgress?.({
      phase: 'done',
      sent,
      total: o.count,
      elapsedMs: durationMs,
      durationMs: o.durationMs,
      ratePerSecond: perSecond(sent, durationMs),
      errors: producer.errors,
    });
    const invalid = Object.entries(tally.byKind)
      .filter(([kind]) => kind.startsWith('invalid:'))
      .reduce((sum, [, n]) => sum + n, 0);
    const result: LoadResult = {
      runId: o.runId,
      topic: o.topic,
      setup,
      sent,
      valid: sent - invalid,
      invalid,
      byKind: tally.byKind,
      expected: tally.expected,
      errors: producer.errors - errorsBefore,
      durationMs: Math.round(durationMs),
      ratePerSecond: Math.round(perSecond(sent, durationMs)),
      aborted,
    };
    if (producer.firstError !== undefined) result.firstError = producer.firstError;
    if (tally.ids) result.ids = tally.ids;
    return result;
  } finally {
    await producer.close();
  }
}

async function runSetup(
  o: ResolvedLoadOptions,
  workload: Workload,
  producer: LoadProducer,
  tally: Tally,
): Promise<LoadResult['setup']> {
  const started = performance.now();
  const total = 2 * o.accounts;
  let lastReport = started;
  const report = () => {
    const now = performance.now();
    if (now - lastReport < o.progressIntervalMs) return;
    lastReport = now;
    o.onProgress?.({
      phase: 'setup',
      sent: producer.acked,
      total,
      elapsedMs: now - started,
      durationMs: undefined,
      ratePerSecond: perSecond(producer.acked, now - started),
      errors: producer.errors,
    });
  };
  const acked = (messages: LoadMessage[]) => record(tally, messages, false);
  // Account opening before funding: each deposit must find its account, in the same partition.
  for (const make of [(i: number) => workload.openAccount(i), (i: number) => workload.deposit(i)]) {
    for (let start = 0; start < o.accounts; start += o.batchRecordsMax) {
      await producer.slot();
      const end = Math.min(o.accounts, start + o.batchRecordsMax);
      producer.send(
        Array.from({ length: end - start }, (_, k) => make(start + k)),
        acked,
      );
      report();
    }
    await producer.drain(DRAIN_TIMEOUT_MS);
  }
  if (o.setupSettleMs > 0) await sleep(o.setupSettleMs, o.signal);
  const deposits = tally.byKind.deposit ?? 0;
  return { accounts: tally.byKind.open_account ?? 0, deposits, durationMs: Math.round(performance.now() - started) };
}

/** Sends transfer-phase commands until a bound is reached; returns whether the signal aborted the run. */
async function runTransfers(
  o: ResolvedLoadOptions,
  workload: Workload,
  producer: LoadProducer,
  tally: Tally,
  started: number,
): Promise<boolean> {
  const ackedAtStart = producer.acked;
  const acked = (messages: LoadMessage[]) => record(tally, messages, true);
  let scheduled = 0;
  let reportedAtMs = 0;
  let sentAtMs = -TICK_MS;
  for (;;) {
    if (o.signal?.aborted) return true;
    const elapsed = performance.now() - started;
    if (o.durationMs !== undefined && elapsed >= o.durationMs) return false;
    const remaining = o.count === undefined ? Number.MAX_SAFE_INTEGER : o.count - scheduled;
    if (remaining <= 0) return false;
    if (elapsed - reportedAtMs >= o.progressIntervalMs) {
      reportedAtMs = elapsed;
      const sent = producer.acked - ackedAtStart;
      o.onProgress?.({
        phase: 'transfers',
        sent,
        total: o.count,
        elapsedMs: elapsed,
        durationMs: o.durationMs,
        ratePerSecond: perSecond(sent, elapsed),
        errors: producer.errors,
      });
    }
    // Paced: what the schedule `rate × elapsed` says is due, sent once per tick unless a full batch is due.
    const due =
      o.ratePerSecond > 0 ? Math.floor((o.ratePerSecond * elapsed) / 1000) + 1 - scheduled : o.batchRecordsMax;
    const waitForTick = o.ratePerSecond > 0 && due < o.batchRecordsMax && elapsed - sentAtMs < TICK_MS;
    if (due <= 0 || waitForTick) {
      await sleep(TICK_MS, o.signal);
      continue;
    }
    await producer.slot();
    const n = Math.min(due, o.batchRecordsMax, remaining);
    scheduled += n;
    sentAtMs = elapsed;
    producer.send(
      Array.from({ length: n }, () => workload.next()),
      acked,
    );
  }
}

function record(tally: Tally, messages: LoadMessage[], transferPhase: boolean): void {
  for (const m of messages) {
    tally.byKind[m.kind] = (tally.byKind[m.kind] ?? 0) + 1;
    tally.ids?.push({ id: m.id, kind: m.kind, key: m.key, expect: m.expect });
    if (!transferPhase) continue;
    if (m.expect.topic === 'completed_or_failed') tally.expected.transfers++;
    else if (m.expect.topic === 'failed')
      tally.expected.failed[m.expect.code] = (tally.expected.failed[m.expect.code] ?? 0) + 1;
    else if (m.expect.topic === 'dlq') tally.expected.dlq++;
  }
}

function perSecond(count: number, ms: number): number {
  return ms > 0 ? (count * 1000) / ms : 0;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
