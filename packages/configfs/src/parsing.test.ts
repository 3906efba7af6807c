import { describe, expect, it } from 'vitest';
import { parseLoopbackAddress, parseUioName } from './discovery';
import { randomWwn, validateWwn } from './index';
import { formatDevConfig, parseDevConfig } from './ownership';

describe('parsing kernel strings', () => {
  it('splits a uio name with a limit of 4, keeping slashes in dev_config', () => {
    expect(parseUioName('tcm-user/3/disk0/tcmu-ts/disk0/123/456\n')).toEqual({
      hba: 3,
      name: 'disk0',
      devConfig: 'tcmu-ts/disk0/123/456',
    });
    expect(parseUioName('tcm-user/0/runner/fbo/a/b/c')).toEqual({
      hba: 0,
      name: 'runner',
      devConfig: 'fbo/a/b/c',
    });
    expect(parseUioName('tcm-user/1/x/')).toEqual({ hba: 1, name: 'x', devConfig: '' });
    expect(parseUioName('uio_pci_generic')).toBeUndefined();
    expect(parseUioName('tcm-user/x/name/cfg')).toBeUndefined();
    expect(parseUioName('tcm-user/1')).toBeUndefined();
  });

  it('round-trips the ownership mark and rejects everything else', () => {
    const text = formatDevConfig('disk0', { pid: 42, startTime: 1234 });
    expect(text).toBe('tcmu-ts/disk0/42/1234');
    expect(parseDevConfig(text)).toEqual({ name: 'disk0', owner: { pid: 42, startTime: 1234 } });
    for (const other of [
      'fbo/disk0',
      'tcmu-ts/disk0/42',
      'tcmu-ts/disk0/x/1',
      'tcmu-ts//1/2',
      'qcow/a/1/2',
      '',
    ]) {
      expect(parseDevConfig(other)).toBeUndefined();
    }
  });

  it('parses tcm_loop addresses', () => {
    expect(parseLoopbackAddress('5:0:1\n', 3)).toEqual({ host: 5, channel: 0, target: 1, lun: 3 });
    expect(parseLoopbackAddress('', 0)).toBeUndefined();
    expect(parseLoopbackAddress(undefined, 0)).toBeUndefined();
    expect(parseLoopbackAddress('a:b:c', 0)).toBeUndefined();
  });

  it('makes valid, distinct WWNs', () => {
    const a = randomWwn();
    expect(validateWwn(a)).toBe(a);
    expect(randomWwn()).not.toBe(a);
  });
});
