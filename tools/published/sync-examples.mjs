#!/usr/bin/env node
// Rewrites every README/tutorial block marked `<!-- example: examples/NAME.ts -->` from its file, so
// documentation and the tested examples cannot drift (src/readme-examples.test.ts checks they agree).
// Usage: node tools/published/sync-examples.mjs FILE.md…  (from the repository root)
import { readFileSync, writeFileSync } from 'node:fs';

const marker = /(<!-- example: (examples\/[\w.-]+\.ts) -->\n```ts\n)[\s\S]*?```/g;
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, 'utf8');
  const synced = text.replace(marker, (_, head, example) => `${head}${readFileSync(example, 'utf8')}\`\`\``);
  if (synced !== text) {
    writeFileSync(file, synced);
    console.log(`synced ${file}`);
  }
}
