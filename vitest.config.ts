import { defineConfig } from 'vitest/config';

// Kernel tests share one kernel (configfs, tcm_loop targets, /dev/sdX numbering) and several compare
// configfs before and after: inside the lab, test files run one at a time.
const kernelMode = process.env.TCMU_TEST_MODE === 'kernel';

export default defineConfig({
  test: {
    projects: [
      'packages/*/vitest.config.ts',
      'packages/backends/*/vitest.config.ts',
      'tools/*/vitest.config.ts',
      'examples/vitest.config.ts',
    ],
    fileParallelism: !kernelMode,
  },
});
