// "Quiet" is checked, not assumed: no open transaction on any topic read, the processor has committed past
// every input and credits record, and the sink has stored offsets past every outcome. Comparing a moving
// system would report differences that are only lag.
import type pg from 'pg';
import type { Config } from '../../config/config.ts';
import type { Logger } from '../../config/logger.ts';
import { fetchStableOffsets } from '../../kafka/committed-offsets.ts';
import { tpKey } from '../../kafka/fetcher.ts';
import type { Offsets, QuietState, Range } from './model.ts';
import { changelogs, range, rangesBetween, type TopicReader } from './read.ts';

const QUIET_POLL_MS = 250;

export async function waitQuiet(
  config: Config,
  reader: TopicReader,
  db: pg.Client,
  timeoutMs: number,
  logger?: Logger,
): Promise<QuietState> {
  const started = Date.now();
  for (;;) {
    const state = await quietState(config, reader, db);
    state.waitedMs = Date.now() - started;
    if (state.quiet || state.waitedMs >= timeoutMs) return state;
    logger?.info({ ...state }, 'waiting for the system to become quiet');
    await new Promise((resolve) => setTimeout(resolve, QUIET_POLL_MS));
  }
}

export async function quietState(config: Config, reader: TopicReader, db: pg.Client): Promise<QuietState> {
  const { topics } = config;
  const processed = [topics.input, topics.credits];
  const sunk = [topics.completed, topics.failed, topics.audit];
  const all = [...processed, ...sunk, ...storeTopics(config)];
  const [start, high, stable] = [
    await reader.offsets(all, 'earliest'),
    await reader.offsets(all, 'high'),
    await reader.offsets(all, 'stable'),
  ];
  const openTransactions = [...high]
    .filter(([key, end]) => (stable.get(key) ?? end) < end)
    .map(([key]) => key.replace('\u0000', '-'));
  const committed = await fetchStableOffsets(
    reader.consumer,
    new Map([...(await reader.partitionsOf(processed))].map(([t, n]) => [t, range(n)])),
    {
      clientId: `${config.appId}-reconcile-offsets`,
      connection: {},
      timeoutMs: 15_000,
      retryDelayMs: 100,
    },
  );
  const stored = await sinkOffsets(db, config.sinkGroupId);
  // Records, not offsets: transaction markers occupy offsets that no consumer ever "processes".
  const processorPending = await countRecords(reader, rangesBetween(committed, only(stable, processed), start));
  const sinkPending = await countRecords(reader, rangesBetween(stored, only(stable, sunk), start));
  const quiet = openTransactions.length === 0 && processorPending === 0 && sinkPending === 0;
  return { quiet, waitedMs: 0, processorPending, sinkPending, openTransactions };
}

async function countRecords(reader: TopicReader, ranges: Range[]): Promise<number> {
  let count = 0;
  await reader.read(ranges, () => count++);
  return count;
}

async function sinkOffsets(db: pg.Client, groupId: string): Promise<Offsets> {
  const { rows } = await db.query<{ topic: string; partition: number; next_offset: string }>(
    'SELECT topic, partition, next_offset FROM sink_offsets WHERE group_id = $1',
    [groupId],
  );
  return new Map(rows.map((row) => [tpKey(row.topic, row.partition), BigInt(row.next_offset)]));
}

function storeTopics(config: Config): string[] {
  const { balances, accounts, transfers, holds } = changelogs(config);
  return [balances, accounts, transfers, holds];
}

function only(offsets: Offsets, topics: string[]): Offsets {
  return new Map([...offsets].filter(([key]) => topics.includes(key.split('\u0000')[0] ?? '')));
}
