import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

// `tcmu --version` prints what this build was made from: package.json's version and the git commit.
const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as {
  version: string;
};
let commit = '';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  }).trim();
} catch {
  // not a checkout (a packed tarball): no commit
}

// Two entries: the library (`index`, with types) and the `tcmu` binary (`cli`, whose source starts with a
// hashbang that esbuild keeps and tsup turns into an executable file).
//
// The @tcmu libraries are bundled in (one self-contained tree of chunks): the binary starts from a few
// files instead of a node_modules walk (much faster over the kernel lab's 9p root) and never mixes
// library builds. Left external: native/large dependencies (koffi, pino) and @tcmu/backend-s3, which is
// loaded lazily only for s3: URLs (it brings the AWS SDK).
export default defineConfig({
  entry: ['src/index.ts', 'src/cli.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  clean: true,
  sourcemap: true,
  target: 'node20',
  noExternal: [/^@tcmu\/(?!backend-s3)/],
  define: { __TCMU_CLI_VERSION__: JSON.stringify(version), __TCMU_CLI_COMMIT__: JSON.stringify(commit) },
});
