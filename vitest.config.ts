import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          globalSetup: ['test/support/global-setup.ts'],
          include: ['test/**/*.test.ts'],
          exclude: ['test/**/*.timing.test.ts', 'test/chaos/**'],
          // Integration tests start worker processes; two files at a time fits a 2-core machine.
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        // Tests that assert on elapsed time (wake-up, rates, pause within 1 s, lease return) run
        // last and one file at a time, so other test files' load does not skew what they measure.
        extends: true,
        test: {
          name: 'timing',
          globalSetup: ['test/support/global-setup.ts'],
          include: ['test/**/*.timing.test.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        // The reliability suite (`npm run test:chaos`): kills, restarts and injected faults under
        // load, bounded to a few minutes. Last, alone: it loads the machine on purpose.
        extends: true,
        test: {
          name: 'chaos',
          globalSetup: ['test/support/global-setup.ts'],
          include: ['test/chaos/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 300_000,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
