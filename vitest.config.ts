import { defineConfig } from 'vitest/config';

// Integration tests share one local broker and one PostgreSQL server on a 2-core machine:
// run files one at a time so timings stay far from every timeout, and tests inside a file in order.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    pool: 'forks',
    reporters: ['default'],
  },
});
