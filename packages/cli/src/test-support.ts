// Helpers shared by this package's tests (not part of the published build: no entry imports it).
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, vi } from 'vitest';
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

/**
 * A stand-in for systemd: a python3 unix datagram socket bound at `path` that prints the first
 * datagram it receives. Resolves once the socket is bound.
 */
export async function notifyListener(path: string) {
  const script = [
    'import socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    'p = sys.argv[1]',
    "s.bind('\\0' + p[1:] if p.startswith('@') else p)",
    "print('bound', flush=True)",
    'print(s.recv(4096).decode(), flush=True)',
  ].join('\n');
  const child = spawn('python3', ['-c', script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  await vi.waitFor(() => expect(output).toMatch(/^bound\n/), { timeout: 10_000 });
  return {
    /** The first datagram, once it arrived. */
    received: async () => {
      await exited;
      return output.replace(/^bound\n/, '').replace(/\n$/, '');
    },
    stop: () => child.kill(),
  };
}
