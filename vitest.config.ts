import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      'packages/*/vitest.config.ts',
      'packages/backends/*/vitest.config.ts',
      'tools/*/vitest.config.ts',
    ],
  },
});
