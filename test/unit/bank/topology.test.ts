import { describe, expect, test } from 'vitest';
import { BANK_STORES } from '../../../src/bank/stores.ts';
import { buildBankTopology } from '../../../src/bank/topology.ts';
import { TopologyError } from '../../../src/topology/topology.ts';
import { TOPICS } from './harness.ts';

describe('buildBankTopology', () => {
  test('should read commands and credits, write every output topic and declare the credits topic when built', () => {
    const topology = buildBankTopology({ topics: TOPICS, dedupRetentionMs: 1_000 });
    expect(topology.sourceTopics().sort()).toEqual([TOPICS.credits, TOPICS.input].sort());
    expect(topology.sinkTopics().sort()).toEqual(
      [TOPICS.audit, TOPICS.credits, TOPICS.completed, TOPICS.failed, TOPICS.dlq].sort(),
    );
    expect(topology.repartitionTopics()).toEqual([TOPICS.credits]);
    expect(topology.stores().map((s) => s.name)).toEqual([...BANK_STORES]);
    expect(topology.stores().every((s) => s.logged)).toBe(true);
  });

  test('should refuse to build when a duration is not a positive integer', () => {
    expect(() => buildBankTopology({ topics: TOPICS, dedupRetentionMs: 0 })).toThrow(TopologyError);
    expect(() => buildBankTopology({ topics: TOPICS, dedupRetentionMs: 1, punctuateIntervalMs: 1.5 })).toThrow(
      /punctuateIntervalMs/,
    );
  });
});
