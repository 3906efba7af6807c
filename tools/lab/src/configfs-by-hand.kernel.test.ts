// Proves the kernel side the rest of the project relies on, with nothing but file operations on
// configfs: a TCMU device is created, its UIO device appears with the documented name and a mappable
// size, and removing it leaves configfs as it was.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeKernel, TARGET_CONFIGFS } from './index.ts';

const core = join(TARGET_CONFIGFS, 'core');
const read = (path: string) => readFileSync(path, 'utf8').trim();
const uioDevices = () => (existsSync('/sys/class/uio') ? readdirSync('/sys/class/uio').sort() : []);

/** The uio device whose name is `name`, if any. */
function findUio(name: string): string | undefined {
  return uioDevices().find((uio) => read(`/sys/class/uio/${uio}/name`) === name);
}

describeKernel('a TCMU device made by hand through configfs', () => {
  // The describe body also runs outside the lab (to list the skipped test): touch the kernel only in
  // hooks and tests.
  const name = `by-hand-${process.pid}`;
  const devConfig = 'lab/by-hand/config';
  const sizeBytes = 64 * 1024 * 1024;
  let hba = 0;
  let hbaDir = '';
  let deviceDir = '';
  let coreBefore: string[] = [];
  let uioBefore: string[] = [];

  beforeAll(() => {
    // An HBA number no one else uses in this boot.
    const taken = new Set(
      readdirSync(core)
        .filter((entry) => entry.startsWith('user_'))
        .map((entry) => Number(entry.slice(5))),
    );
    hba = 4000 + (process.pid % 1000);
    while (taken.has(hba)) hba++;
    hbaDir = join(core, `user_${hba}`);
    deviceDir = join(hbaDir, name);
    coreBefore = readdirSync(core).sort();
    uioBefore = uioDevices();
  });

  afterAll(() => {
    // Only what this test made, in case an assertion failed half-way.
    if (deviceDir && existsSync(deviceDir)) rmdirSync(deviceDir);
    if (hbaDir && existsSync(hbaDir)) rmdirSync(hbaDir);
  });

  it('creates the device, enables it, finds its uio device and removes it cleanly', () => {
    mkdirSync(deviceDir, { recursive: true });
    expect(readdirSync(core)).toContain(`user_${hba}`);
    expect(readdirSync(deviceDir)).toEqual(expect.arrayContaining(['control', 'enable', 'attrib', 'wwn']));
    expect(read(join(deviceDir, 'enable'))).toBe('0');

    // One token per write; nl_reply_supported=-1 so enable never waits for a netlink daemon.
    for (const token of [`dev_config=${devConfig}`, `dev_size=${sizeBytes}`, 'nl_reply_supported=-1'])
      writeFileSync(join(deviceDir, 'control'), token);
    writeFileSync(join(deviceDir, 'wwn', 'vpd_unit_serial'), `lab-${process.pid}`);
    writeFileSync(join(deviceDir, 'enable'), '1');
    expect(read(join(deviceDir, 'enable'))).toBe('1');

    // The kernel reports what it took from the control tokens.
    const info = read(join(deviceDir, 'info'));
    expect(info).toContain(`Config: ${devConfig}`);
    expect(info).toContain(`Size: ${sizeBytes}`);
    expect(read(join(deviceDir, 'attrib', 'dev_size'))).toBe(String(sizeBytes));
    expect(read(join(deviceDir, 'attrib', 'nl_reply_supported'))).toBe('-1');
    expect(read(join(deviceDir, 'attrib', 'hw_block_size'))).toBe('512');

    // The uio device: name tcm-user/<hba>/<name>/<dev_config>, a nonzero map, a node in /dev.
    const expectedName = `tcm-user/${hba}/${name}/${devConfig}`;
    const uio = findUio(expectedName);
    expect(uio, `a uio device named ${expectedName} among ${uioDevices().join(', ')}`).toBeDefined();
    expect(uioBefore).not.toContain(uio);
    const mapSize = Number(read(`/sys/class/uio/${uio}/maps/map0/size`));
    expect(Number.isSafeInteger(mapSize)).toBe(true);
    expect(mapSize).toBeGreaterThan(8 * 1024 * 1024); // the command ring alone is 8 MiB on 6.x
    expect(mapSize % 4096).toBe(0);
    expect(read(`/sys/class/uio/${uio}/maps/map0/offset`)).toBe('0x0');
    expect(existsSync(`/dev/${uio}`)).toBe(true);

    // Removal: the uio device goes, configfs is as before.
    rmdirSync(deviceDir);
    expect(findUio(expectedName)).toBeUndefined();
    expect(existsSync(`/sys/class/uio/${uio}`)).toBe(false);
    rmdirSync(hbaDir);
    expect(readdirSync(core).sort()).toEqual(coreBefore);
    expect(uioDevices()).toEqual(uioBefore);
  });
});
