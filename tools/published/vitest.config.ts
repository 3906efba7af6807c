import { tcmuProject } from '../../vitest.shared.ts';

export default tcmuProject('published', { testTimeout: 300_000, hookTimeout: 300_000 });
