import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import {
  type TopicState,
  changelogConfigDrift,
  changelogConfigs,
  layoutProblems,
  plannedTopics,
} from '../../../src/ops/topics.ts';

const config = loadConfig({ PARTITIONS: '4' });

function states(partitions: (role: string) => number | undefined, cleanup?: string): TopicState[] {
  return plannedTopics(config).map((spec) => {
    const count = partitions(spec.role);
    if (count === undefined) return { spec, exists: false };
    const planned = spec.configs['retention.ms'];
    const state: TopicState = {
      spec,
      exists: true,
      partitions: count,
      cleanupPolicy: spec.role === 'changelog' ? (cleanup ?? spec.configs['cleanup.policy']) : 'delete',
    };
    if (planned !== undefined) state.retentionMs = planned;
    return state;
  });
}

describe('plannedTopics', () => {
  it('should plan compacted changelogs for the given stores when stores are passed', () => {
    const specs = plannedTopics(config, ['a', 'b']);

    expect(specs.filter((s) => s.role === 'changelog').map((s) => [s.name, s.configs['cleanup.policy']])).toEqual([
      ['bankstream-a-changelog', 'compact'],
      ['bankstream-b-changelog', 'compact'],
    ]);
    expect(specs.every((s) => s.partitions === 4 && s.configs['min.insync.replicas'] === '1')).toBe(true);
  });
});

describe('layoutProblems', () => {
  it('should report nothing when every co-partitioned topic has PARTITIONS partitions', () => {
    expect(
      layoutProblems(
        states(() => 4),
        4,
      ),
    ).toEqual([]);
  });

  it('should name each topic and its count when one differs', () => {
    const problems = layoutProblems(
      states((role) => (role === 'credits' ? 6 : 4)),
      4,
    );

    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('bankstream-credits=6');
    expect(problems[0]).toContain('transaction_initiated=4');
  });

  it('should ignore output topics when their partition count differs', () => {
    expect(
      layoutProblems(
        states((role) => (role === 'audit' ? 1 : 4)),
        4,
      ),
    ).toEqual([]);
  });

  it('should report a changelog when it is not compacted', () => {
    expect(
      layoutProblems(
        states(() => 4, 'delete'),
        4,
      ),
    ).toHaveLength(4);
  });

  it('should report the dedup changelog with its planned configs when it still has the compact-only layout', () => {
    const problems = layoutProblems(
      states(() => 4, 'compact'),
      4,
    );

    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('bankstream-transfers-changelog has cleanup.policy=compact, expected compact,delete');
    expect(problems[0]).toContain('bankstream topics create');
  });

  it('should report a changelog whose time retention is shorter than planned when retention.ms differs', () => {
    const topics = states(() => 4).map((state) =>
      state.retentionMs === undefined ? state : { ...state, retentionMs: '1000' },
    );

    expect(changelogConfigDrift(topics.find((t) => t.spec.name === 'bankstream-transfers-changelog')!)).toEqual([
      `retention.ms=1000, expected ${plannedTopics(config).find((t) => t.name === 'bankstream-transfers-changelog')!.configs['retention.ms']}`,
    ]);
  });
});

describe('changelogConfigs', () => {
  it('should plan compact,delete with retention.ms above the dedup retention for the transfers store only', () => {
    const retention = Number(changelogConfigs(config, 'transfers')['retention.ms']);

    expect(changelogConfigs(config, 'transfers')['cleanup.policy']).toBe('compact,delete');
    // Retention, plus one segment (half of it), plus the pinned-entry refresh period (half of it).
    expect(retention).toBe(config.dedupRetentionMs * 2);
    expect(changelogConfigs(config, 'balances')).toEqual({ 'cleanup.policy': 'compact' });
  });
});
