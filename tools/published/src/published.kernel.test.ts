import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describeKernel } from '@tcmu/lab';
import { expect, it } from 'vitest';
import { runExample, scratchDirectory } from './published';

// The host suite (published.test.ts) builds the scratch project before the lab runs: the guest has no
// network to install anything.
const built = existsSync(join(scratchDirectory, 'dist', 'quick-start.js'));

describeKernel('the README quick start, as published, in the real kernel', () => {
  it.skipIf(!built)(
    `opens a disk and closes it (skipped when the host test has not built ${scratchDirectory})`,
    async () => {
      const printed = await runExample('quick-start');
      expect(printed).toMatch(/^\/dev\/sd[a-z]+\n$/);
    },
  );
});
