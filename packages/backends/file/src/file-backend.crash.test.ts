import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { expect, it } from 'vitest';
import { record } from './crash-writer.child';
import { openFileBackend } from './file-backend';

const packageFolder = fileURLToPath(new URL('..', import.meta.url));
const backendSource = fileURLToPath(new URL('../../backend/src/index.ts', import.meta.url));

/** Bundles the child (TypeScript source) into a runnable .mjs in `folder`, with koffi linked beside it. */
async function bundleChild(folder: string): Promise<string> {
  const outfile = join(folder, 'crash-writer.mjs');
  await mkdir(join(folder, 'node_modules'));
  await symlink(join(packageFolder, 'node_modules', 'koffi'), join(folder, 'node_modules', 'koffi'));
  await build({
    entryPoints: [fileURLToPath(new URL('./crash-writer.child.ts', import.meta.url))],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['koffi'],
    alias: { '@tcmu/backend': backendSource },
    logLevel: 'silent',
  });
  return outfile;
}

/** Resolves with the child's stdout lines as they come; `until` decides when to stop listening. */
function watchLines(child: ChildProcess, until: (line: string) => boolean): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    let buffered = '';
    let stderr = '';
    child.stderr!.on('data', (chunk) => {
      stderr += chunk;
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        if (until(line)) resolve(lines);
      }
    });
    child.on('exit', (code, signal) => {
      if (signal === null) reject(new Error(`writer exited (code ${code}) before being killed: ${stderr}`));
    });
    child.on('error', reject);
  });
}

it('a writer SIGKILLed mid-stream loses nothing it had flushed, and its lock dies with it', async () => {
  const folder = await mkdtemp(join(tmpdir(), 'tcmu-crash-writer-'));
  const scratch = await mkdtemp(join(tmpdir(), 'tcmu-crash-'));
  const path = join(scratch, 'disk.img');
  const size = 64 * 1024 * 1024;
  try {
    const child = spawn(process.execPath, [await bundleChild(folder), path, String(size)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TCMU_CRASH_WRITER: '1' },
    });
    // Let it run a while, then kill it with no chance to clean up.
    const lines = await watchLines(child, (line) => line === 'flushed 400');
    const exited = new Promise((resolve) => child.on('exit', resolve));

    // While it is alive, its lock keeps everyone else out.
    const locked = await openFileBackend({ path }).then(
      async (backend) => {
        await backend.close();
        return 'opened';
      },
      (error: { code: string }) => error.code,
    );
    expect(locked).toBe('TCMU_ERR_BACKEND_LOCKED');

    child.kill('SIGKILL');
    await exited;
    // Everything the child printed before the kill (and anything still in the pipe).
    const flushedCounts = lines.filter((l) => l.startsWith('flushed ')).map((l) => Number(l.slice(8)));
    const flushed = Math.max(...flushedCounts);
    expect(flushed).toBeGreaterThanOrEqual(400);

    const backend = await openFileBackend({ path }); // the lock did not survive the process
    try {
      const out = new Uint8Array(4096);
      let intactAfter = 0;
      let zeroAfter = 0;
      for (let index = 0; index < size / 4096; index++) {
        await backend.read(index * 4096, 4096, [out]);
        if (index < flushed) {
          expect(Buffer.compare(out, record(index)), `flushed record ${index}`).toBe(0);
        } else if (Buffer.compare(out, record(index)) === 0) intactAfter++;
        else if (out.every((b) => b === 0)) zeroAfter++;
      }
      console.log(
        `crash test: ${flushed} records flushed before SIGKILL, all intact; after them ${intactAfter} complete unflushed records, ${zeroAfter} never-written`,
      );
    } finally {
      await backend.close();
    }
  } finally {
    await rm(folder, { recursive: true, force: true });
    await rm(scratch, { recursive: true, force: true });
  }
});
