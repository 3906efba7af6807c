import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseUioName } from './discovery';
import { isConfigfsError } from './errors';
import { formatDevConfig, parseDevConfig } from './ownership';
import { validateAttribute, validateDeviceName, validateSerial, validateWwn } from './validate';

const refused = (run: () => unknown) => {
  try {
    run();
    return false;
  } catch (error) {
    expect(isConfigfsError(error, 'TCMU_ERR_INVALID_NAME'), String(error)).toBe(true);
    return true;
  }
};

describe('validation (properties)', () => {
  it('a device name is either refused with TCMU_ERR_INVALID_NAME or safe for configfs, dev_config and the uio name', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80, unit: 'binary' }), (name) => {
        if (refused(() => validateDeviceName(name))) return;
        expect(name).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);
        expect(name.includes('..')).toBe(false);
        const devConfig = formatDevConfig(name, { pid: 12, startTime: 34 });
        expect(devConfig.length).toBeLessThanOrEqual(255);
        expect(/[:,\s]/.test(devConfig)).toBe(false);
        expect(parseDevConfig(devConfig)).toEqual({ name, owner: { pid: 12, startTime: 34 } });
        expect(parseUioName(`tcm-user/7/${name}/${devConfig}`)).toEqual({ hba: 7, name, devConfig });
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses the characters configfs or the control parser would misread', () => {
    for (const bad of ['/', '..', ':', ',', '\n', '\0', ' ', '\t', '=']) {
      expect(refused(() => validateDeviceName(`a${bad}b`))).toBe(true);
      expect(refused(() => validateSerial(`a${bad}b`))).toBe(true);
    }
  });

  it('attribute values are integers, booleans or short safe words; anything else is refused', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 70, unit: 'binary' }), (text) => {
        let written: string | undefined;
        try {
          written = validateAttribute('cmd_time_out', text).text;
        } catch (error) {
          expect(isConfigfsError(error, 'TCMU_ERR_INVALID_NAME')).toBe(true);
          return;
        }
        expect(written).toMatch(/^[A-Za-z0-9._-]{1,64}$/);
      }),
      { numRuns: 1000 },
    );
    expect(validateAttribute('emulate_write_cache', true).text).toBe('1');
    expect(validateAttribute('qfull_time_out', -1).text).toBe('-1');
  });

  it('WWNs are normalised to lower case and must be naa. + 16 hex digits', () => {
    expect(validateWwn('NAA.5001405ABCDEF012')).toBe('naa.5001405abcdef012');
    for (const bad of [
      'naa.5001405abcdef01',
      'naa.5001405abcdef0123',
      'iqn.2003-01.x',
      'naa.5001405abcdefg12',
      7,
    ]) {
      expect(refused(() => validateWwn(bad))).toBe(true);
    }
  });
});
