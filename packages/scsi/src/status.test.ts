import { describe, expect, it } from 'vitest';
import { ScsiStatus } from './status';

describe('ScsiStatus', () => {
  it('has the SAM-5 values', () => {
    expect(ScsiStatus.CheckCondition).toBe(0x02);
    expect(ScsiStatus.TaskSetFull).toBe(0x28);
  });
});
