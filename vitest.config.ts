import { defineConfig } from 'vitest/config';

// Two projects (scripts/test.sh decides which run):
//   unit    test/unit: pure TypeScript and in-memory simulations; no root, no
//           devices, no compiled addon.
//   system  test/integration: real namespaces, TAP devices, the addon, Docker,
//           Open vSwitch; root only, and test/global-setup.ts refuses to start
//           without what they need rather than skipping anything.
export default defineConfig({
  test: {
    // System tests build network namespaces and move real traffic; run files
    // one at a time so they do not fight over two cores.
    fileParallelism: false,
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'], setupFiles: ['test/helpers/unit-setup.ts'] } },
      { extends: true, test: { name: 'system', include: ['test/integration/**/*.test.ts'], globalSetup: ['test/global-setup.ts'] } },
    ],
  },
});
