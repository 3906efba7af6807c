import { defineProject } from 'vitest/config';

export default defineProject({
  test: { include: ['broken-backends.suite.ts'], testTimeout: 60_000 },
});
