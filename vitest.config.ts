import { defineConfig } from 'vitest/config';

// Two groups, one after the other; the tests inside a file run in order.
//   group 0, two files at a time (one per core):
//     unit         no broker, no PostgreSQL, no fixed ports;
//     isolated     the files that start private brokers of their own (their own ports and folders) and
//                  spend most of their time waiting on them (an outage of 60 s, TLS, SASL, three nodes):
//                  beside the unit tests rather than in the sequence after them, which keeps the suite
//                  in its 20-minute budget.
//   group 1, one file at a time:
//     integration  the files on the one local broker (and the machine's PostgreSQL): alone, so they never
//                  see each other's groups, topics or load, and timings stay far from every timeout. The
//                  chaos run and the scale-out test also start private services, but they load both
//                  cores for minutes: they stay here, where no other file competes with them.
const shared = { testTimeout: 120_000, hookTimeout: 120_000, pool: 'forks' as const };

const ISOLATED = [
  'test/integration/resilience/broker-outage.test.ts',
  'test/integration/security/three-brokers.test.ts',
  'test/integration/security/sasl-acls.test.ts',
  'test/integration/security/tls.test.ts',
];

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
          exclude: ISOLATED,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          ...shared,
          name: 'isolated',
          include: ISOLATED,
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
    ],
  },
});
