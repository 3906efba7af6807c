// The scratch project the as-published tests share: every package packed with `pnpm pack`, installed
// from the tarballs (and the registry, for third-party dependencies) outside the workspace, with the
// examples compiled against the published types. Kept under <repo>/.results/published so the kernel
// lab (which cannot reach the registry) runs the compiled examples the host made.
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const repositoryRoot = fileURLToPath(new URL('../../..', import.meta.url));
export const scratchDirectory = join(repositoryRoot, '.results', 'published');

/** The published packages: folder → name. */
export const publishedPackages: Record<string, string> = {
  'packages/scsi': '@tcmu/scsi',
  'packages/libc': '@tcmu/libc',
  'packages/ring': '@tcmu/ring',
  'packages/configfs': '@tcmu/configfs',
  'packages/core': '@tcmu/core',
  'packages/backends/backend': '@tcmu/backend',
  'packages/backends/memory': '@tcmu/backend-memory',
  'packages/backends/file': '@tcmu/backend-file',
  'packages/backends/s3': '@tcmu/backend-s3',
  'packages/cli': '@tcmu/cli',
};

/** Packs every package, installs the tarballs into a new scratch project and compiles examples/. */
export async function buildScratchProject(): Promise<void> {
  rmSync(scratchDirectory, { recursive: true, force: true });
  const tarballs = join(scratchDirectory, 'tarballs');
  mkdirSync(tarballs, { recursive: true });
  const files: Record<string, string> = {};
  for (const [folder, name] of Object.entries(publishedPackages)) {
    const before = new Set(readdirSync(tarballs));
    await run('pnpm', ['pack', '--pack-destination', tarballs], { cwd: join(repositoryRoot, folder) });
    const made = readdirSync(tarballs).find((f) => !before.has(f));
    if (!made) throw new Error(`pnpm pack made no tarball for ${name}`);
    files[name] = `file:tarballs/${made}`;
  }
  const typescript = JSON.parse(readFileSync(join(repositoryRoot, 'package.json'), 'utf8')).devDependencies
    .typescript as string;
  const nodeTypes = JSON.parse(readFileSync(join(repositoryRoot, 'package.json'), 'utf8')).devDependencies[
    '@types/node'
  ] as string;
  writeFileSync(
    join(scratchDirectory, 'package.json'),
    `${JSON.stringify(
      {
        name: 'tcmu-as-published',
        private: true,
        type: 'module',
        dependencies: files,
        // The packages' own @tcmu dependencies (^0.0.0 ranges) resolve to the same tarballs.
        overrides: files,
        devDependencies: { typescript, '@types/node': nodeTypes },
      },
      null,
      2,
    )}\n`,
  );
  await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: scratchDirectory,
    maxBuffer: 16 << 20,
  });
  cpSync(join(repositoryRoot, 'examples'), join(scratchDirectory, 'examples'), { recursive: true });
  // The conformance example needs vitest, which a published backend's users bring themselves.
  rmSync(join(scratchDirectory, 'examples', 'array-backend.conformance.ts'));
  writeFileSync(
    join(scratchDirectory, 'tsconfig.json'),
    `${JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          lib: ['ES2023'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          types: ['node'],
          strict: true,
          outDir: 'dist',
          rootDir: 'examples',
          skipLibCheck: false,
        },
        include: ['examples'],
      },
      null,
      2,
    )}\n`,
  );
  await run(join(scratchDirectory, 'node_modules', '.bin', 'tsc'), ['-p', scratchDirectory], {
    cwd: scratchDirectory,
  }).catch((error: { stdout?: string }) => {
    throw new Error(`the examples do not compile against the published packages:\n${error.stdout ?? error}`);
  });
}

/** Where the portable scratch project lives: the pure packages only, installed without optional dependencies. */
export const portableDirectory = join(repositoryRoot, '.results', 'published-portable');

/** The packages that must install and run with no koffi and no Linux: decoding and emulation. */
const portablePackages = [
  '@tcmu/scsi',
  '@tcmu/libc',
  '@tcmu/ring',
  '@tcmu/configfs',
  '@tcmu/core',
  '@tcmu/backend',
  '@tcmu/backend-memory',
];

/**
 * Installs the pure packages from the tarballs of {@link buildScratchProject} with
 * `--omit=optional` (koffi is optional: what a platform without a koffi build, or a user who skips
 * it, gets) and writes a script that serves SCSI commands through the emulation with no ring.
 */
export async function buildPortableProject(): Promise<void> {
  rmSync(portableDirectory, { recursive: true, force: true });
  mkdirSync(portableDirectory, { recursive: true });
  const scratch = JSON.parse(readFileSync(join(scratchDirectory, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  const files = Object.fromEntries(
    portablePackages.map((name) => [
      name,
      scratch.dependencies[name]!.replace('file:', `file:${scratchDirectory}/`),
    ]),
  );
  writeFileSync(
    join(portableDirectory, 'package.json'),
    `${JSON.stringify({ name: 'tcmu-portable', private: true, type: 'module', dependencies: files, overrides: files }, null, 2)}\n`,
  );
  await run('npm', ['install', '--omit=optional', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: portableDirectory,
    maxBuffer: 16 << 20,
  });
  writeFileSync(
    join(portableDirectory, 'emulate.mjs'),
    `import { openMemoryBackend } from '@tcmu/backend-memory';
import { serveRing } from '@tcmu/core';
import { buildCdb } from '@tcmu/scsi';

// serveRing over a ring in plain memory (the SimulatedKernel of @tcmu/ring/testing maps a memfd
// through koffi): submit() hands a command to the server and resolves with its completion.
let handlers;
const pending = new Map();
const ring = { start: (h) => { handlers = h; }, complete: (id, c) => pending.get(id)(c), close: async () => {} };
let id = 0;
const submit = (cdb, data) => new Promise((resolve) => {
  pending.set(++id, resolve);
  handlers.onCommand({ id, cdb, iovecs: [data], dataLength: data.length, bidirectionalIovecs: [] });
});
const backend = await openMemoryBackend({ size: 1 << 20 });
const served = serveRing(ring, { backend, name: 'portable', powerOnUnitAttention: false });
const written = await submit(buildCdb({ name: 'WRITE(10)', lba: 3n, transferLength: 1 }), new Uint8Array(512).fill(7));
const into = new Uint8Array(512);
const read = await submit(buildCdb({ name: 'READ(10)', lba: 3n, transferLength: 1 }), into);
console.log(written.status, read.status, into[0], into[511]);
await served.close();
// Without koffi, a system call is a coded error, not a crash at import time.
const { libc } = await import('@tcmu/libc');
try {
  libc();
  console.log('libc bound');
} catch (error) {
  console.log(error.code);
}
`,
  );
}

/** Runs a compiled example of the scratch project; resolves with what it printed. */
export async function runExample(name: string): Promise<string> {
  const { stdout } = await run(process.execPath, [join(scratchDirectory, 'dist', `${name}.js`)], {
    cwd: scratchDirectory,
  });
  return stdout;
}
