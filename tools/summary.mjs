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
const failures = [];

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
  // vitest's numFailedTestSuites counts every describe block above a failed test as well as the file,
  // so it is not added: a failed test counts once, and a file that failed without any failed test
  // (it did not load, or an afterAll threw) counts once below.
  let f = report.numFailedTests ?? 0;
  const s = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  const part = file.replace(/\.json$/, '');
  for (const suite of report.testResults ?? []) {
    const where = String(suite.name ?? '')
      .replace(/^.*\/packages\//, 'packages/')
      .replace(/^.*\/tools\//, 'tools/');
    const failedHere = (suite.assertionResults ?? []).filter((t) => t.status === 'failed');
    for (const test of failedHere) {
      const why = String(test.failureMessages?.[0] ?? '')
        .split('\n')[0]
        .slice(0, 200);
      failures.push(`${part}: ${where} > ${test.fullName ?? test.title}: ${why}`);
    }
    if (failedHere.length === 0 && suite.status === 'failed') {
      f += 1;
      failures.push(
        `${part}: ${where}: ${String(suite.message ?? 'the file failed')
          .split('\n')[0]
          .slice(0, 200)}`,
      );
    }
  }
  passed += p;
  failed += f;
  skipped += s;
  console.log(
    `  tests ${f ? 'FAIL' : 'ok  '}  ${file.replace(/\.json$/, '')}: ${p} passed, ${f} failed, ${s} skipped`,
  );
}
// The failures again, by name, just above the totals: a CI log is often read from its tail only.
if (failures.length > 0) {
  console.log(`  failed tests (${failures.length}):`);
  for (const line of failures.slice(0, 30)) console.log(`    ${line}`);
  if (failures.length > 30) console.log(`    … and ${failures.length - 30} more`);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
