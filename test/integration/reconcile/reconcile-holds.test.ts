// `bankstream reconcile` on holds (issue #23), against the real broker and Postgres: a clean run of holds
// across partitions (one posted, one voided, one left pending) passes and is counted; then crafted bad data
// — a second resolution of a posted hold, a post of more than was held, a post of a hold never placed, a
// pending hold past its deadline, a Postgres holds row with the wrong status — is each reported, under
// its own kind and hold, and the pending totals that no longer match the open holds are named by account.
import { describe, expect, it } from 'vitest';
import type { Instance } from '../../../src/app/instance.ts';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { formatReport } from '../../../src/ops/reconcile/report.ts';
import { reconcile } from '../../../src/ops/reconcile/reconcile.ts';
import { produce, waitFor } from '../../helpers/kafka.ts';
import { query } from '../support/postgres.ts';
import { PARTITIONS, sendCommands, setUpPipeline, startProcessor } from './pipeline.ts';

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

/** Two account ids in different partitions. */
function crossPair(): [string, string] {
  const a = 'rh-a';
  for (let i = 0; ; i++) {
    const b = `rh-b-${i}`;
    if (partitionForKey(Buffer.from(a), PARTITIONS) !== partitionForKey(Buffer.from(b), PARTITIONS)) return [a, b];
  }
}

describe('reconcile with holds', () => {
  it('should count the holds of a clean run, and name each crafted hold violation', async () => {
    const pipeline = await setUpPipeline('recholds');
    let instance: Instance | undefined;
    try {
      const { config } = pipeline;
      const [a, b] = crossPair();
      const hold = (transferId: string, amount: string) =>
        json({ type: 'hold', transferId, from: a, to: b, amount, currency: 'EUR', timeoutMs: 3_600_000 });
      instance = await startProcessor(config, true);
      await sendCommands(config, [
        { key: a, value: json({ type: 'open_account', accountId: a, ownerId: 'u', currency: 'EUR' }) },
        { key: b, value: json({ type: 'open_account', accountId: b, ownerId: 'u', currency: 'EUR' }) },
        {
          key: a,
          value: json({ type: 'deposit', transferId: 'd-1', accountId: a, amount: '100.00', currency: 'EUR' }),
        },
        { key: a, value: hold('h-ok', '30.00') },
        { key: a, value: hold('h-post', '20.00') },
        { key: a, value: hold('h-void', '10.00') },
      ]);
      // The to task accepts each hold before a post or void of it can be decided.
      const counted = async () => {
        const report = await reconcile(config, { quietTimeoutMs: 0 });
        return report.ok && report.counts.holds.placed === 3 ? report : undefined;
      };
      await waitFor('three holds placed', counted, 90_000, 500);
      await sendCommands(config, [
        { key: a, value: json({ type: 'post_hold', transferId: 'p-post', holdId: 'h-post', from: a }) },
        { key: b, value: json({ type: 'void_hold', transferId: 'v-void', holdId: 'h-void', from: a }) },
      ]);
      const clean = await waitFor(
        'the post and the void',
        async () => {
          const report = await reconcile(config, { quietTimeoutMs: 0 });
          return report.ok && report.counts.holds.pending === 1 ? report : undefined;
        },
        90_000,
        500,
      );
      expect(clean.differences, formatReport(clean)).toEqual([]);
      expect(clean.counts.holds).toEqual({ placed: 3, posted: 1, voided: 1, expired: 0, pending: 1 });
      expect(formatReport(clean)).toContain('holds         3 placed: 1 posted, 1 voided, 0 expired, 1 pending  ok');
      await instance.close();
      instance = undefined;

      // Crafted outcomes, as a buggy processor would have written them (keyed by transferId like real ones;
      // the second resolution under the real post's key, so it lands after it on the same partition).
      const now = new Date().toISOString();
      const outcome = (key: string, value: Record<string, unknown>) => ({
        topic: config.topics.completed,
        key: Buffer.from(key),
        value: json({ requestedAt: now, completedAt: now, currency: 'EUR', from: a, to: b, ...value }),
      });
      await produce([
        outcome('p-post', {
          transferId: 'v-evil',
          type: 'void_hold',
          holdId: 'h-post',
          amount: '20.00',
          status: 'voided',
        }),
        outcome('p-over', {
          transferId: 'p-over',
          type: 'post_hold',
          holdId: 'h-ok',
          amount: '40.00',
          heldAmount: '30.00',
          status: 'posted',
        }),
        outcome('p-ghost', {
          transferId: 'p-ghost',
          type: 'post_hold',
          holdId: 'h-ghost',
          amount: '1.00',
          heldAmount: '1.00',
          status: 'posted',
        }),
        outcome('h-late', {
          transferId: 'h-late',
          type: 'hold',
          amount: '5.00',
          status: 'pending',
          expiresAt: '2020-01-01T00:00:00.000Z',
        }),
      ]);
      await query(config.databaseUrl, "UPDATE holds SET status = 'expired' WHERE hold_id = 'h-void'");

      const bad = await reconcile(config, { quietTimeoutMs: 0 });
      expect(bad.ok).toBe(false);
      const holdDifferences = bad.differences
        .filter((d) => d.kind.startsWith('hold_'))
        .map((d) => [d.kind, d.transferId ?? d.accountId, /Postgres/.test(d.message) ? 'postgres' : 'topics/stores']);
      expect(holdDifferences.sort(), formatReport(bad)).toEqual(
        [
          ['hold_resolved_twice', 'h-post', 'topics/stores'],
          ['hold_amount', 'h-ok', 'topics/stores'],
          ['hold_status', 'h-ok', 'topics/stores'],
          ['hold_status', 'h-ok', 'postgres'],
          ['hold_unplaced', 'h-ghost', 'topics/stores'],
          ['hold_status', 'h-void', 'postgres'],
          ['hold_overdue', 'h-late', 'topics/stores'],
          ['hold_status', 'h-late', 'topics/stores'],
          ['hold_status', 'h-late', 'postgres'],
          ['hold_pending', a, 'topics/stores'],
          ['hold_pending', b, 'topics/stores'],
        ].sort(),
      );
      const text = formatReport(bad);
      expect(text).toMatch(/holds +4 placed: 2 posted, 1 voided, 0 expired, 1 pending {2}DIFFERS/);
      expect(text).toContain('hold h-post of rh-a: 2 resolutions: posted by p-post');
      expect(text).toContain('posted 40.00 of 30.00 held');
      expect(text).toContain(`${a}: pendingDebits 3000 in the stores, open holds sum to 500`);
    } finally {
      await instance?.close().catch(() => undefined);
      await pipeline.cleanup();
    }
  }, 240_000);
});
