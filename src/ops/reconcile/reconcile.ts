// `bankstream reconcile`: for a quiet system, compares three views of every account and says
// where they differ.
//   stores    the processor's state, rebuilt by reading the balances, accounts and transfers
//             changelogs (read_committed, last value per key). That IS what a restoring task would
//             load, so it is exact and needs no running instance. Optionally also the HTTP API.
//   outcomes  the money each account must hold according to transaction_completed
//             (deposits − withdrawals ± transfers), read_committed.
//   postgres  accounts.balance, written by the sink.
// Then the invariants: per currency Σ balances = Σ completed deposits − Σ completed withdrawals; no
// transfer in flight; Postgres `transactions` equals the outcome topics one for one (matched by the
// outcome record's topic, partition and offset: a transferId is unique per acted-on account only, and
// may be decided again after the dedup retention); no unresolved sink reject (each is a record
// Postgres does not show, named in the report).
//
// "Quiet" is checked, not assumed (quiet.ts). The pieces, in the order a run uses them:
//   read.ts     Kafka ranges, the Postgres snapshot, the API      quiet.ts    is the system quiet?
//   rebuild.ts  the stores and outcome views from Kafka           compare.ts  the views, the invariants
//   report.ts   the report as text                                model.ts    the shapes they share
import { connectPg } from '../../sinks/pg-connection.ts';
import type { Config } from '../../config/config.ts';
import type { ReconcileOptions, ReconcileReport } from './model.ts';
import { readApi, readPostgres, TopicReader } from './read.ts';
import { quietState, waitQuiet } from './quiet.ts';
import { readOutcomes, readStores } from './rebuild.ts';
import { accountIds, buildReport } from './compare.ts';

/** Reads every view, compares them and returns the report; throws only when a view cannot be read. */
export async function reconcile(config: Config, options: ReconcileOptions = {}): Promise<ReconcileReport> {
  const reader = new TopicReader(config);
  // The host list's session rule (target_session_attrs): with read-write, the primary of the moment.
  const db = await connectPg(config.databaseUrl, config.postgresTls, {
    client: { application_name: `${config.appId}-reconcile`, connectionTimeoutMillis: 10_000 },
  });
  try {
    const before = await waitQuiet(config, reader, db, options.quietTimeoutMs ?? 30_000, options.logger);
    const postgres = await readPostgres(db, [config.topics.completed, config.topics.failed, config.topics.audit]);
    const stores = await readStores(config, reader);
    const outcomes = await readOutcomes(config, reader);
    const api = options.apiUrl ? await readApi(options, accountIds(stores, outcomes, postgres)) : null;
    // Checked again after reading: anything that moved meanwhile makes the comparison unreliable.
    const after = before.quiet ? { ...(await quietState(config, reader, db)), waitedMs: before.waitedMs } : before;
    return buildReport(config, { quiet: after, stores, outcomes, postgres, api }, options.differencesMax ?? 1_000);
  } finally {
    await db.end().catch(() => undefined);
    await reader.close();
  }
}
