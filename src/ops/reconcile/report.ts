// The report of `bankstream reconcile` as text: a summary per view and check, then every differing account
// and difference (bounded).
import type { AccountLine, ReconcileReport } from './model.ts';

const LINES_MAX = 50;

/** The report as text: a summary per view and check, then every differing account and difference (bounded). */
export function formatReport(report: ReconcileReport): string {
  const c = report.counts;
  const mark = (ok: boolean) => (ok ? 'ok' : 'DIFFERS');
  const { quiet } = report;
  const lines = [
    `bankstream reconcile — app ${report.appId}, ${report.checkedAt}`,
    `  quiet         ${quiet.quiet ? 'yes' : 'NO'} (processor ${quiet.processorPending} pending, sink ${quiet.sinkPending} pending, ${quiet.openTransactions.length} open transactions; waited ${quiet.waitedMs} ms)`,
    `  stores        ${c.storeAccounts} accounts (from the changelogs)`,
    `  outcomes      ${c.completed} completed, ${c.failed} failed, ${c.conflicts} idempotency conflicts`,
    `  postgres      ${c.postgresAccounts} accounts, ${c.postgresTransactions} transactions, ${c.postgresConflicts} conflicts`,
    `  sink rejects  ${c.sinkRejects} unresolved  ${mark(c.sinkRejects === 0)}`,
    `  api           ${c.apiAccounts === null ? 'not checked (no --api-url)' : `${c.apiAccounts} accounts read`}`,
    ...report.currencies.map(
      (t) =>
        `  invariant     ${t.currency}: Σ balances ${t.balances} = Σ deposits ${t.deposits} − Σ withdrawals ${t.withdrawals}  ${mark(t.ok)}`,
    ),
    `  in flight     ${c.inFlightAccounts} accounts, ${c.inFlightTransfers} transfers  ${mark(c.inFlightAccounts === 0 && c.inFlightTransfers === 0)}`,
    `  transactions  ${c.completed + c.failed} outcomes in the topics, ${c.postgresTransactions} rows in Postgres  ${mark(!report.differences.some((d) => d.kind.startsWith('transaction_') || d.kind === 'duplicate_outcome'))}`,
    `  holds         ${c.holds.placed} placed: ${c.holds.posted} posted, ${c.holds.voided} voided, ${c.holds.expired} expired, ${c.holds.pending} pending  ${mark(!report.differences.some((d) => d.kind.startsWith('hold_')))}`,
    `  accounts      ${report.accountsCompared} compared, ${report.differingAccounts.length} differ`,
    ...report.differingAccounts.slice(0, LINES_MAX).map(formatAccountLine),
  ];
  if (report.differencesTotal > 0) {
    lines.push(`  differences   ${report.differencesTotal}`);
    for (const d of report.differences.slice(0, LINES_MAX)) lines.push(`    ${d.kind.padEnd(20)} ${d.message}`);
    if (report.differencesTotal > LINES_MAX) lines.push(`    … and ${report.differencesTotal - LINES_MAX} more`);
  }
  const accounts = [...new Set(report.differences.flatMap((d) => (d.accountId ? [d.accountId] : [])))];
  lines.push(
    report.ok
      ? 'OK: the stores, the outcome topics and Postgres agree'
      : `FAILED: ${report.differencesTotal} difference(s)${accounts.length > 0 ? `; accounts: ${accounts.slice(0, LINES_MAX).join(', ')}` : ''}`,
  );
  return lines.join('\n');
}

function formatAccountLine(line: AccountLine): string {
  const api = line.api === undefined ? '' : `, api ${line.api ?? '-'}`;
  const status =
    line.storeStatus === line.postgresStatus
      ? (line.storeStatus ?? '-')
      : `${line.storeStatus ?? '-'}/${line.postgresStatus ?? '-'}`;
  return `    ${line.accountId} ${line.currency ?? '???'} ${status}: stores ${line.stores ?? '-'} (in flight ${line.inFlight ?? '-'}), outcomes ${line.outcomes}, postgres ${line.postgres ?? '-'}${api}`;
}
