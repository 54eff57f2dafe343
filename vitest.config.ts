import { existsSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

// The e2e suite (real QEMU + Linux guest) joins `npm test` when its rig has been provisioned
// (`npm run e2e:provision`, done by .ci/run); without the rig `npm test` runs the unit and
// integration tests only.
// vitest 5 targets Node >= 22; on Node 20 its reporter calls Map.groupBy (Node 21+) when a test
// fails. This file runs in vitest's main process, so the polyfill here reaches the reporter.
if (typeof (Map as { groupBy?: unknown }).groupBy !== 'function') {
  (Map as unknown as { groupBy: unknown }).groupBy = <K, V>(items: Iterable<V>, key: (v: V, i: number) => K) => {
    const out = new Map<K, V[]>();
    let i = 0;
    for (const v of items) {
      const k = key(v, i++);
      const list = out.get(k);
      if (list) list.push(v);
      else out.set(k, [v]);
    }
    return out;
  };
}

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
