import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import '../test/support/node20.js';

// `npm run bench`: benchmarks print figures; they are not tests and never fail on timing.
export default defineConfig({
  root: fileURLToPath(new URL('..', import.meta.url)),
  test: {
    include: ['bench/**/*.bench.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 60_000,
  },
});
