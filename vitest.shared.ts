// Shared vitest settings for every project in the workspace.
// Tests import sibling packages by name; these aliases point them at the sibling's source, so a test
// run never depends on a stale dist/. Published builds are checked separately (publint, the lab).
import { fileURLToPath } from 'node:url';
import { defineProject } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));

/** Workspace packages by import name → folder. Subpaths `/testing` and `/filters` map to `src/<subpath>/index.ts`. */
export const workspacePackages: Record<string, string> = {
  '@tcmu/scsi': 'packages/scsi',
  '@tcmu/libc': 'packages/libc',
  '@tcmu/ring': 'packages/ring',
  '@tcmu/configfs': 'packages/configfs',
  '@tcmu/core': 'packages/core',
  '@tcmu/cli': 'packages/cli',
  '@tcmu/backend': 'packages/backends/backend',
  '@tcmu/backend-memory': 'packages/backends/memory',
  '@tcmu/backend-file': 'packages/backends/file',
  '@tcmu/backend-s3': 'packages/backends/s3',
  '@tcmu/lab': 'tools/lab',
};

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

export const sourceAliases = Object.entries(workspacePackages).flatMap(([name, dir]) => [
  { find: new RegExp(`^${escapeRegExp(name)}/testing$`), replacement: `${root}${dir}/src/testing/index.ts` },
  { find: new RegExp(`^${escapeRegExp(name)}/filters$`), replacement: `${root}${dir}/src/filters/index.ts` },
  { find: new RegExp(`^${escapeRegExp(name)}$`), replacement: `${root}${dir}/src/index.ts` },
]);

/**
 * Which tests run, from TCMU_TEST_MODE:
 * - unset: every `*.test.ts`; kernel tests (`*.kernel.test.ts`) skip with their reason outside the lab.
 * - `host`: everything but kernel tests (the lab runs those).
 * - `kernel`: only kernel tests (set by the lab inside the guest).
 */
export function testFiles(): { include: string[]; exclude: string[] } {
  const mode = process.env.TCMU_TEST_MODE;
  const base = ['**/node_modules/**', '**/dist/**'];
  if (mode === 'kernel')
    return { include: ['src/**/*.kernel.test.ts', 'test/**/*.kernel.test.ts'], exclude: base };
  if (mode === 'host')
    return { include: ['src/**/*.test.ts', 'test/**/*.test.ts'], exclude: [...base, '**/*.kernel.test.ts'] };
  return { include: ['src/**/*.test.ts', 'test/**/*.test.ts'], exclude: base };
}

/** The project config every package's `vitest.config.ts` uses. */
export function tcmuProject(name: string, test: Record<string, unknown> = {}) {
  return defineProject({
    resolve: { alias: sourceAliases },
    test: { name, ...testFiles(), testTimeout: 60_000, hookTimeout: 60_000, ...test },
  });
}
