import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

// The suite must be able to fail: run it on deliberately broken backends in a child vitest and check
// that each breakage is caught by the test meant to catch it.
const expectedFailures: Record<string, string> = {
  'sync-read-answers-stale-bytes': 'tryReadSync and tryWriteSync, where present',
  'unmap-does-nothing': 'unmap makes the range read as zeros',
  'past-end-zero-fills': 'rejects reads and writes past the end',
  'compare-and-write-not-atomic': 'compareAndWrite writes on match',
  'flush-is-not-a-function': 'capability gating',
  'unwritten-reads-leave-garbage': 'reads never-written ranges as zeros',
  'short-read-is-silent': 'moves large I/O',
  'compare-and-write-ignores-last-byte': 'random sequences of operations agree',
};

it('the conformance suite fails each deliberately broken backend on the right test', async () => {
  const folder = fileURLToPath(new URL('./broken/', import.meta.url));
  const vitest = join(
    createRequire(import.meta.url)
      .resolve('vitest/package.json')
      .replace(/package\.json$/, ''),
    'vitest.mjs',
  );
  const out = await mkdtemp(join(tmpdir(), 'conformance-'));
  try {
    const report = join(out, 'report.json');
    await new Promise<void>((resolve) => {
      execFile(
        process.execPath,
        [vitest, 'run', '--root', folder, '--reporter=json', `--outputFile=${report}`],
        { env: { ...process.env, TCMU_TEST_MODE: '' } },
        () => resolve(),
      );
    });
    const json = JSON.parse(await readFile(report, 'utf8')) as {
      testResults: { assertionResults: { ancestorTitles: string[]; title: string; status: string }[] }[];
    };
    const results = json.testResults.flatMap((file) => file.assertionResults);
    for (const [variant, testName] of Object.entries(expectedFailures)) {
      const mine = results.filter((r) => r.ancestorTitles.join(' ').includes(`: ${variant}`));
      expect(mine.length, `${variant} ran`).toBeGreaterThan(10);
      const target = mine.filter((r) => r.title.startsWith(testName));
      expect(target.length, `${variant}: test "${testName}" exists`).toBe(1);
      expect(target[0]!.status, `${variant} is caught by "${testName}"`).toBe('failed');
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
