import { defineConfig } from 'tsup';

// Two entries: the library (`index`, with types) and the `tcmu` binary (`cli`, whose source starts with a
// hashbang that esbuild keeps and tsup turns into an executable file).
export default defineConfig({
  entry: ['src/index.ts', 'src/cli.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  clean: true,
  sourcemap: true,
  target: 'node20',
});
