import { defineConfig } from 'vitest/config';

// Two groups, one after the other. Unit tests (no broker, no PostgreSQL, no fixed ports) run two files
// at a time, one per core. Integration tests share one local broker and one PostgreSQL server on a
// 2-core machine: they run one file at a time, after the unit tests, so timings stay far from every
// timeout, and tests inside a file in order.
const shared = { testTimeout: 120_000, hookTimeout: 120_000, pool: 'forks' as const };

export default defineConfig({
  test: {
    reporters: ['default'],
    projects: [
      {
        test: {
          ...shared,
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...shared,
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/chaos/**/*.test.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
