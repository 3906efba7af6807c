import { describe, expect, it } from 'vitest';
import type { Backend } from './backend';
import { backendCapabilities, hasCapability } from './capabilities';

const minimal: Backend = { size: 4096, read: async () => {}, write: async () => {} };

describe('backendCapabilities', () => {
  it('derives every capability from the presence of methods', () => {
    expect(backendCapabilities(minimal)).toEqual({
      flush: false,
      unmap: false,
      writeZeroes: false,
      compareAndWrite: false,
      getAllocation: false,
      resize: false,
      close: false,
      readOnly: false,
      persistent: false,
      writesSurviveCrash: false,
    });
    const full = backendCapabilities({
      ...minimal,
      flush: async () => {},
      unmap: async () => {},
      persistent: true,
      writesSurviveCrash: true,
    });
    expect(full.flush && full.unmap && full.persistent && full.writesSurviveCrash).toBe(true);
    expect(full.writeZeroes).toBe(false);
    expect(Object.isFrozen(full)).toBe(true);
  });

  it('hasCapability does not treat a non-function as a capability', () => {
    expect(hasCapability({ ...minimal, unmap: undefined }, 'unmap')).toBe(false);
    expect(hasCapability({ ...minimal, unmap: async () => {} }, 'unmap')).toBe(true);
  });
});
