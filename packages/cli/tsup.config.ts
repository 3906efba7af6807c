import { defineConfig } from 'tsup';

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
});
