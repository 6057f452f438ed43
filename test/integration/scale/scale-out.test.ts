// Issue 7, "Done means": three instances on their own ports under continuous load; a fourth joins, one leaves
// with SIGTERM, one dies with SIGKILL and comes back. Every command still has exactly one outcome, money adds
// up, Postgres matches, and every balance query was answered with a correct, fresh balance or a 503.
import { describe, expect, it } from 'vitest';
import { formatScaleReport, runScaleOut } from './scale-out.ts';

describe('scale-out by partition', () => {
  it('should keep exactly-once outcomes and answer every balance query correctly or with 503 when instances join, leave and crash under load', async () => {
    const report = await runScaleOut({
      seed: 7,
      accounts: 40,
      transfers: 3000,
      loadMs: 60_000,
      partitions: 6,
      kafkaPort: 19792,
      postgresPort: 55833,
      httpPorts: [19801, 19802, 19803, 19804],
      queriesPerSecond: 20,
      log: (line) => console.log(`[scale] ${line}`),
    });
    console.log(formatScaleReport(report));

    expect(report.failures).toEqual([]);
    expect(report.answerViolations).toEqual([]);
    expect(report.pipelineViolations).toEqual([]);
    expect(report.postgresViolations).toEqual([]);
    expect(report.reconcileOk, report.reconcileSummary).toBe(true);
    // Every instance that ran answered queries with balances, not only 503s.
    for (const name of ['i0', 'i1', 'i2', 'i3']) expect(report.counts.get(name)?.ok ?? 0, name).toBeGreaterThan(0);
    for (const failover of report.failovers)
      expect(
        [...failover.servedAgainMs.values()].every((ms) => ms !== undefined),
        failover.event,
      ).toBe(true);
  }, 300_000);
});
