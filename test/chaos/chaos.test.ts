// The short, fixed-seed chaos run of the suite, with one standby per partition (`npm run chaos -- --duration
// 5m --seed N [--standby 1]` for long ones).
import { describe, expect, it } from 'vitest';
import { formatReport, runChaos } from './chaos.ts';

describe('bank under faults', () => {
  it('should lose and duplicate nothing, keep every cent and exit nothing by itself when instances, the sink, the broker and Postgres fail', async () => {
    const report = await runChaos({
      durationMs: 30_000,
      schedule: [
        'kill-instance',
        'kill-sink',
        'pause-instance',
        'postgres',
        'scale',
        'broker',
        'broker-outage',
        'kill-instance',
      ],
      // One long outage, starting while an instance restarts into a rebalance (the longest fault of the run).
      brokerOutageMs: [30_000, 30_000],
      seed: 1,
      transfers: 2000,
      accounts: 30,
      kafkaPort: 19492,
      postgresPort: 55533,
      // Standbys take part: a killed or paused instance's partitions fail over to warm copies.
      standbyReplicas: 1,
      log: () => undefined,
    });
    console.log(formatReport(report));
    expect(report.faults.length).toBeGreaterThanOrEqual(8);
    expect(report.violations).toEqual([]);
    expect(report.unplannedExits).toEqual([]);
    expect(report.losses).toBe(0);
    expect(report.duplicates).toBe(0);
    expect(report.outcomes).toBeGreaterThan(1500);
  }, 600_000);
});
