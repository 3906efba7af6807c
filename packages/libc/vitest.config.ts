import { tcmuProject } from '../../vitest.shared.ts';

export default tcmuProject('libc');
