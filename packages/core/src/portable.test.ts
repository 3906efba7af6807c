import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const fixture = (name: string) => fileURLToPath(new URL(`./__fixtures__/${name}`, import.meta.url));
const built = existsSync(fileURLToPath(new URL('../dist/index.js', import.meta.url)));

describe('the pure parts without native code', () => {
  // Runs the built package (dist/) in a child process: `pnpm build` (or tools/bootstrap.sh) first.
  it.skipIf(!built)(
    'the built core imports, decodes and serves a backend with koffi unresolvable (skipped when dist/ is not built)',
    async () => {
      const { stdout } = await run(
        process.execPath,
        ['--import', fixture('no-koffi.mjs'), fixture('serve-without-koffi.mjs')],
        { cwd: fileURLToPath(new URL('..', import.meta.url)) },
      );
      // koffi really is missing in the child, and WRITE(10) then READ(10) are GOOD with the data back.
      expect(JSON.parse(stdout)).toEqual({ koffi: 'MODULE_NOT_FOUND', written: 0, read: 0, byte: 7 });
    },
  );
});
