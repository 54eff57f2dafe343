import { existsSync } from 'node:fs';
import { defineConfig } from 'vitest/config';
import './test/support/node20.js';

// The e2e suite (real QEMU + Linux guest) joins `npm test` when its rig has been provisioned
// (`npm run e2e:provision`, done by .ci/run); without the rig `npm test` runs the unit and
// integration tests only.
const rigReady = existsSync(new URL('./.e2e-cache/rig.env', import.meta.url));

export default defineConfig({
  test: {
    // the JSON report is what .ci/run reads for its closing `tests: N passed, N failed` line
    reporters: ['default', ['json', { outputFile: '.vitest-results.json' }]],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/e2e/**'],
          pool: 'forks',
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      ...(rigReady || process.env.VHC_E2E === '1'
        ? [{
            test: {
              name: 'e2e',
              include: ['test/e2e/**/*.test.ts'],
              pool: 'forks' as const,
              fileParallelism: false,
              testTimeout: 180_000,
              hookTimeout: 600_000,
            },
          }]
        : []),
    ],
  },
});
