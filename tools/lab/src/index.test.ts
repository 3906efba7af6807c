import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isInsideLab, type KernelProbe, kernelSkipReason, systemProbe, TARGET_CONFIGFS } from './index.ts';

const probe = (root: boolean, configfs: boolean, user: boolean): KernelProbe => ({
  isRoot: () => root,
  hasTargetConfigfs: () => configfs,
  hasTargetCoreUser: () => user,
});

describe('kernelSkipReason', () => {
  it('is undefined only with root, configfs target/ and target_core_user', () => {
    expect(kernelSkipReason(probe(true, true, true))).toBeUndefined();
    for (const [root, configfs, user] of [
      [false, true, true],
      [true, false, true],
      [true, true, false],
      [false, false, false],
    ] as const) {
      expect(kernelSkipReason(probe(root, configfs, user))).toMatch(
        /run in the kernel lab \(tools\/lab\/run\)$/,
      );
    }
  });

  it('names the first missing piece', () => {
    expect(kernelSkipReason(probe(false, false, false))).toContain(TARGET_CONFIGFS);
    expect(kernelSkipReason(probe(true, true, false))).toContain('target_core_user module loaded');
    expect(kernelSkipReason(probe(false, true, true))).toContain('needs root');
  });

  it('agrees with the running machine', () => {
    const ready =
      existsSync(TARGET_CONFIGFS) && existsSync('/sys/module/target_core_user') && process.getuid?.() === 0;
    expect(kernelSkipReason(systemProbe) === undefined).toBe(ready);
  });
});

describe('isInsideLab', () => {
  it('reads TCMU_LAB=1 only', () => {
    expect(isInsideLab({ TCMU_LAB: '1' })).toBe(true);
    expect(isInsideLab({ TCMU_LAB: '0' })).toBe(false);
    expect(isInsideLab({})).toBe(false);
  });
});
