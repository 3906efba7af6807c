#!/usr/bin/env node
// Adds up a test run: every vitest JSON report and every step recorded in steps.tsv under the results
// folder, prints one line per part and then the totals line `N passed, N failed, N skipped`.
// Exits 1 when anything failed or a report that a step promised is missing.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2] ?? '.results/test';
let passed = 0;
let failed = 0;
let skipped = 0;

const stepsFile = join(dir, 'steps.tsv');
if (existsSync(stepsFile)) {
  for (const line of readFileSync(stepsFile, 'utf8').split('\n').filter(Boolean)) {
    const [name, status, seconds] = line.split('\t');
    if (status === 'ok') passed += 1;
    else failed += 1;
    console.log(`  step  ${status === 'ok' ? 'ok  ' : 'FAIL'}  ${name} (${seconds}s)`);
  }
}
for (const file of readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()) {
  let report;
  try {
    report = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  } catch {
    console.log(`  tests FAIL  ${file}: unreadable report`);
    failed += 1;
    continue;
  }
  const p = report.numPassedTests ?? 0;
  const f = (report.numFailedTests ?? 0) + (report.numFailedTestSuites ?? 0);
  const s = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  passed += p;
  failed += f;
  skipped += s;
  console.log(
    `  tests ${f ? 'FAIL' : 'ok  '}  ${file.replace(/\.json$/, '')}: ${p} passed, ${f} failed, ${s} skipped`,
  );
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
