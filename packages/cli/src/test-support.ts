// Helpers shared by this package's tests (not part of the published build: no entry imports it).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { CommandIo } from './io.js';

/** Asserts that `run` throws a one-line error with `code` whose message matches `message`. */
export function expectCliError(run: () => unknown, code: string, message: RegExp): void {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, 'expected an error').toBeInstanceOf(Error);
  expect((thrown as { code?: unknown }).code).toBe(code);
  expect((thrown as Error).message).toMatch(message);
  expect((thrown as Error).message).not.toContain('\n');
}

/**
 * A CommandIo that records what a command prints. Its environment points TCMU_RUN_DIR at a fresh temp
 * folder, so serve's state records never land in the real /run/tcmu.
 */
export function captureIo(overrides: Partial<CommandIo> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CommandIo = {
    stdout: (text) => out.push(text),
    stderr: (text) => err.push(text),
    env: { TCMU_RUN_DIR: mkdtempSync(join(tmpdir(), 'tcmu-run-')) },
    cwd: '/work',
    pid: 4242,
    ...overrides,
  };
  return { io, stdout: () => out.join(''), stderr: () => err.join('') };
}
