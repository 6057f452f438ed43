import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { type TopicState, layoutProblems, plannedTopics } from '../../../src/ops/topics.ts';

const config = loadConfig({ PARTITIONS: '4' });

function states(partitions: (role: string) => number | undefined, cleanup = 'compact'): TopicState[] {
  return plannedTopics(config).map((spec) => {
    const count = partitions(spec.role);
    return count === undefined ? { spec, exists: false } : { spec, exists: true, partitions: count, cleanupPolicy: spec.role === 'changelog' ? cleanup : 'delete' };
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
    expect(layoutProblems(states(() => 4), 4)).toEqual([]);
  });

  it('should name each topic and its count when one differs', () => {
    const problems = layoutProblems(states((role) => (role === 'credits' ? 6 : 4)), 4);

    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('bankstream-credits=6');
    expect(problems[0]).toContain('transaction_initiated=4');
  });

  it('should ignore output topics when their partition count differs', () => {
    expect(layoutProblems(states((role) => (role === 'audit' ? 1 : 4)), 4)).toEqual([]);
  });

  it('should report a changelog when it is not compacted', () => {
    expect(layoutProblems(states(() => 4, 'delete'), 4)).toHaveLength(3);
  });
});
