// Every TypeScript block in a README that is marked `<!-- example: examples/NAME.ts -->` must be that
// file, byte for byte: the file is what the suite typechecks and runs (here, as published, in the lab).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const readmes = [
  'README.md',
  'packages/core/README.md',
  'packages/backends/backend/README.md',
  'packages/backends/memory/README.md',
  'docs/tutorials/write-a-backend.md',
  'docs/tutorials/write-a-scsi-handler.md',
];
const marker = /<!-- example: (examples\/[\w.-]+\.ts) -->\n```ts\n([\s\S]*?)```/g;

/** The marked blocks of one README: [file named by the marker, the block's text]. */
export function markedBlocks(markdown: string): [string, string][] {
  return [...markdown.matchAll(marker)].map((m) => [m[1]!, m[2]!]);
}

describe('README examples are the files under examples/', () => {
  it('finds blocks in a markdown text and ignores unmarked ones', () => {
    const text = '```ts\nnot marked\n```\n<!-- example: examples/a.ts -->\n```ts\nconst a = 1;\n```\n';
    expect(markedBlocks(text)).toEqual([['examples/a.ts', 'const a = 1;\n']]);
  });

  const seen = new Set<string>();
  for (const readme of readmes) {
    it(`${readme}: each marked block equals its file`, () => {
      const blocks = markedBlocks(readFileSync(join(root, readme), 'utf8'));
      expect(blocks.length, `${readme} has no marked example`).toBeGreaterThan(0);
      for (const [file, text] of blocks) {
        seen.add(file);
        expect(text, `${readme} → ${file}`).toBe(readFileSync(join(root, file), 'utf8'));
      }
    });
  }

  it('every example under examples/ is shown in a README or a tutorial', () => {
    for (const file of [
      'examples/quick-start.ts',
      'examples/simulated-kernel.ts',
      'examples/memory-backend.ts',
      'examples/array-backend.ts',
      'examples/array-backend.conformance.ts',
      'examples/custom-handler.ts',
      'examples/chunk-filters.ts',
    ]) {
      expect(seen.has(file), file).toBe(true);
    }
  });
});
