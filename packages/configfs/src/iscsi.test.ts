import { afterEach, describe, expect, it } from 'vitest';
import {
  type ConfigfsErrorCode,
  createUserDevice,
  deriveIscsiName,
  exportIscsi,
  ISCSI_IQN_PREFIX,
  isConfigfsError,
  listDevices,
  listIscsiExports,
  removeStale,
  validateIscsiChap,
  validateIscsiName,
  validateIscsiPortal,
} from './index';
import {
  createFakeKernel,
  type FakeKernel,
  type FakeKernelOptions,
  type FakeOperation,
} from './testing/index';

let kernel: FakeKernel | undefined;
afterEach(async () => {
  await kernel?.dispose();
  kernel = undefined;
});

async function setup(options: FakeKernelOptions = {}) {
  const k = await createFakeKernel(options);
  kernel = k;
  const device = await createUserDevice({
    ...k.roots,
    hba: 1,
    name: 'vol_A',
    size: 1 << 20,
    blockSize: 512,
    serial: 'serial-a',
  });
  return { k, device, before: await k.snapshot(), opsBefore: k.operations.length };
}

async function failure(promise: Promise<unknown>, code: ConfigfsErrorCode): Promise<Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isConfigfsError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
  return error as Error;
}

const INITIATOR = 'iqn.2004-10.com.example:client1';
const OTHER = 'iqn.2004-10.com.example:client2';
const SECRET = 'correct-horse-battery';

describe('iSCSI names, portals and CHAP', () => {
  it('derives a host-independent lower-case target IQN from the device name', () => {
    expect(deriveIscsiName('vol_A')).toBe(`${ISCSI_IQN_PREFIX}vol-a`);
    expect(() => deriveIscsiName('a/b')).toThrow(/device name/);
  });

  it('accepts iqn., eui. and naa. names and refuses the rest with TCMU_ERR_INVALID_NAME', () => {
    for (const good of [
      INITIATOR,
      'iqn.1994-05.com.redhat:5ef4a7c9b1',
      'eui.0123456789abcdef',
      'naa.5001405abcdef012',
    ]) {
      expect(validateIscsiName(good)).toBe(good);
    }
    for (const bad of [
      '',
      'iqn.2004-10.com.Example:x',
      'iqn.04-10.com.example',
      'iqn.2004-13.com.example',
      'iqn.2004-10.com.example:a/b',
      'iqn.2004-10.com.example:a b',
      'host1',
      `iqn.2004-10.com.example:${'x'.repeat(220)}`,
    ]) {
      let error: unknown;
      try {
        validateIscsiName(bad);
      } catch (e) {
        error = e;
      }
      expect(isConfigfsError(error, 'TCMU_ERR_INVALID_NAME'), bad).toBe(true);
    }
  });

  it('accepts IPv4 and [IPv6] portals with a port, and nothing else', () => {
    expect(validateIscsiPortal('127.0.0.1:3260')).toBe('127.0.0.1:3260');
    expect(validateIscsiPortal('0.0.0.0:860')).toBe('0.0.0.0:860');
    expect(validateIscsiPortal('[::1]:3260')).toBe('[::1]:3260');
    expect(validateIscsiPortal('[FE80::1]:3260')).toBe('[fe80::1]:3260');
    for (const bad of [
      '127.0.0.1',
      'localhost:3260',
      '256.0.0.1:3260',
      '1.2.3.4:0',
      '1.2.3.4:65536',
      '::1:3260',
      '01.2.3.4:3260',
      '[1::2::3]:3260',
    ]) {
      expect(() => validateIscsiPortal(bad), bad).toThrow(/invalid iSCSI portal/);
    }
  });

  it('checks CHAP credentials and never shows the secret', () => {
    expect(validateIscsiChap({ userid: 'alice', password: SECRET })).toEqual({
      userid: 'alice',
      password: SECRET,
    });
    const short = 'too-short';
    expect(() => validateIscsiChap({ userid: 'alice', password: short })).toThrow(
      /12-255 characters \(it has 9\)/,
    );
    try {
      validateIscsiChap({ userid: 'alice', password: `${SECRET} with spaces` });
      expect.unreachable();
    } catch (error) {
      expect(String(error)).not.toContain(SECRET);
    }
    expect(() => validateIscsiChap({ userid: '', password: SECRET })).toThrow(/CHAP user/);
  });
});

describe('exportIscsi', () => {
  it('builds target, TPG, LUN, ACLs and portal, enabling last; remove() leaves configfs as before', async () => {
    const { k, device, before, opsBefore } = await setup();
    const exported = await exportIscsi({
      ...k.roots,
      hba: 1,
      name: 'vol_A',
      portals: ['127.0.0.1:3260'],
      allow: [INITIATOR, OTHER],
    });
    const iqn = `${ISCSI_IQN_PREFIX}vol-a`;
    expect(exported).toMatchObject({
      iqn,
      open: false,
      readOnly: false,
      chap: false,
      allow: [INITIATOR, OTHER],
    });
    const tpgt = `config/target/iscsi/${iqn}/tpgt_1`;
    const ops = k.operations
      .slice(opsBefore)
      .map((op) => `${op.operation} ${op.path}${op.data === undefined ? '' : ` ${op.data}`}`);
    expect(ops[0]).toBe('mkdir config/target/iscsi');
    expect(ops).toContain(`write ${tpgt}/param/TargetAlias tcmu-ts/vol_A`);
    expect(ops).toContain(`write ${tpgt}/attrib/generate_node_acls 0`);
    expect(ops).toContain(`write ${tpgt}/attrib/authentication 0`);
    expect(ops).toContain(`symlink ${tpgt}/lun/lun_0/vol_A config/target/core/user_1/vol_A`);
    // Write protection is fixed before the LUN exists; each mapping's flag after its link.
    expect(ops.indexOf(`write ${tpgt}/attrib/prod_mode_write_protect 0`)).toBeLessThan(
      ops.indexOf(`mkdir ${tpgt}/lun/lun_0`),
    );
    for (const initiator of [INITIATOR, OTHER]) {
      const link = ops.indexOf(`symlink ${tpgt}/acls/${initiator}/lun_0/lun_0 ${tpgt}/lun/lun_0`);
      expect(link).toBeGreaterThan(0);
      expect(ops.indexOf(`write ${tpgt}/acls/${initiator}/lun_0/write_protect 0`)).toBeGreaterThan(link);
    }
    expect(ops.at(-1)).toBe(`write ${tpgt}/enable 1`);

    const [record] = await listDevices(k.roots);
    expect(record?.iscsi).toEqual([
      {
        iqn,
        tpgt: 1,
        lun: 0,
        portals: ['127.0.0.1:3260'],
        acls: [INITIATOR, OTHER],
        open: false,
        enabled: true,
        chap: false,
        owned: true,
      },
    ]);
    expect(await listIscsiExports({ ...k.roots, hba: 1, name: 'vol_A' })).toEqual(record?.iscsi);

    // The backstore cannot go while exported.
    await failure(device.remove(), 'TCMU_ERR_CONFIGFS_IO');
    await exported.remove();
    await exported.remove(); // idempotent
    expect(await k.snapshot()).toEqual(before);
    expect((await listDevices(k.roots))[0]).not.toHaveProperty('iscsi');
    await device.remove();
  });

  it('an open, read-only export with CHAP sets the TPG credentials and write protection', async () => {
    const { k, before } = await setup();
    const exported = await exportIscsi({
      ...k.roots,
      hba: 1,
      name: 'vol_A',
      iqn: 'iqn.2024-01.com.example:ro',
      portals: ['0.0.0.0:3260', '[::1]:3261'],
      open: true,
      readOnly: true,
      chap: { userid: 'alice', password: SECRET },
    });
    const tpgt = `${k.configfsRoot}/target/iscsi/iqn.2024-01.com.example:ro/tpgt_1`;
    const read = async (path: string) => (await k.system.readFile(`${tpgt}/${path}`)).trim();
    expect(await read('attrib/generate_node_acls')).toBe('1');
    expect(await read('attrib/demo_mode_write_protect')).toBe('1');
    expect(await read('attrib/prod_mode_write_protect')).toBe('1');
    expect(await read('attrib/authentication')).toBe('1');
    expect(await read('auth/userid')).toBe('alice');
    expect(await read('auth/password')).toBe(SECRET);
    expect(await k.system.readdir(`${tpgt}/np`)).toEqual(['0.0.0.0:3260', '[::1]:3261']);
    expect(await k.system.readdir(`${tpgt}/acls`)).toEqual([]);
    await exported.remove();
    expect(await k.snapshot()).toEqual(before);
  });

  it('listed initiators with CHAP get per-ACL credentials and write-protected mappings when read-only', async () => {
    const { k } = await setup();
    const exported = await exportIscsi({
      ...k.roots,
      hba: 1,
      name: 'vol_A',
      allow: [INITIATOR],
      readOnly: true,
      chap: { userid: 'bob', password: SECRET },
    });
    const acl = `${exported.configfsPath}/tpgt_1/acls/${INITIATOR}`;
    expect((await k.system.readFile(`${acl}/auth/userid`)).trim()).toBe('bob');
    expect((await k.system.readFile(`${acl}/auth/password`)).trim()).toBe(SECRET);
    expect((await k.system.readFile(`${acl}/lun_0/write_protect`)).trim()).toBe('1');
    expect(exported.portals).toEqual(['127.0.0.1:3260']);
    await exported.remove();
  });

  it('refuses bad requests before touching configfs', async () => {
    const { k, opsBefore } = await setup();
    const roots = { ...k.roots, hba: 1, name: 'vol_A' };
    await failure(exportIscsi({ ...roots }), 'TCMU_ERR_INVALID_ARGUMENT');
    await failure(exportIscsi({ ...roots, open: true, allow: [INITIATOR] }), 'TCMU_ERR_INVALID_ARGUMENT');
    await failure(exportIscsi({ ...roots, allow: ['Host1'] }), 'TCMU_ERR_INVALID_NAME');
    await failure(exportIscsi({ ...roots, open: true, portals: [] }), 'TCMU_ERR_INVALID_ARGUMENT');
    await failure(
      exportIscsi({ ...roots, open: true, portals: ['localhost:3260'] }),
      'TCMU_ERR_INVALID_ARGUMENT',
    );
    await failure(exportIscsi({ ...roots, open: true, iqn: 'target' }), 'TCMU_ERR_INVALID_NAME');
    const chapError = await failure(
      exportIscsi({ ...roots, open: true, chap: { userid: 'u', password: 'short secret' } }),
      'TCMU_ERR_INVALID_ARGUMENT',
    );
    expect(chapError.message).not.toContain('short secret');
    expect(k.operations.length).toBe(opsBefore);
    await failure(exportIscsi({ ...roots, name: 'missing', open: true }), 'TCMU_ERR_NOT_FOUND');
    expect(k.operations.slice(opsBefore).filter((op) => op.operation !== 'run')).toEqual([]);
  });

  it('refuses a second export under the same IQN and leaves the first intact', async () => {
    const { k } = await setup();
    const first = await exportIscsi({ ...k.roots, hba: 1, name: 'vol_A', open: true });
    const snapshot = await k.snapshot();
    await failure(exportIscsi({ ...k.roots, hba: 1, name: 'vol_A', open: true }), 'TCMU_ERR_ALREADY_EXISTS');
    expect(await k.snapshot()).toEqual(snapshot);
    await first.remove();
  });

  it('a portal in use fails with a clear error and rolls everything back', async () => {
    const { k, before } = await setup({ portalsInUse: ['0.0.0.0:3260'] });
    const error = await failure(
      exportIscsi({
        ...k.roots,
        hba: 1,
        name: 'vol_A',
        allow: [INITIATOR],
        portals: ['127.0.0.1:3260', '0.0.0.0:3260'],
      }),
      'TCMU_ERR_INVALID_ARGUMENT',
    );
    expect(error.message).toMatch(/0\.0\.0\.0:3260 \(EADDRINUSE\)/);
    expect(await k.snapshot()).toEqual(before);
  });

  it('a failure at any step leaves nothing behind, and a failed secret write does not show the secret', async () => {
    let failAt = -1;
    let seen = 0;
    const fail = (op: FakeOperation) => (op.operation !== 'run' && seen++ === failAt ? 'EIO' : undefined);
    const { k, before } = await setup({ fail });
    const request = {
      ...k.roots,
      hba: 1,
      name: 'vol_A',
      allow: [INITIATOR],
      chap: { userid: 'carol', password: SECRET },
      portals: ['127.0.0.1:3260'],
    };
    // Count the steps of a successful export, then fail each one in turn.
    seen = 0;
    const exported = await exportIscsi(request);
    const steps = seen;
    await exported.remove();
    expect(steps).toBeGreaterThan(15);
    for (failAt = 0; failAt < steps; failAt += 1) {
      seen = 0;
      const error = await failure(exportIscsi(request), 'TCMU_ERR_CONFIGFS_IO');
      expect(error.message).not.toContain(SECRET);
      seen = Number.NEGATIVE_INFINITY; // no failure during the comparison
      expect(await k.snapshot(), `failing step ${failAt}`).toEqual(before);
    }
  });

  it('removeStale removes the export of a dead owner’s device with the device', async () => {
    const k = await createFakeKernel();
    kernel = k;
    const before = await k.snapshot();
    const core = `${k.configfsRoot}/target/core`;
    await k.system.mkdir(`${core}/user_4`);
    const dir = `${core}/user_4/gone`;
    await k.system.mkdir(dir);
    await k.system.writeFile(`${dir}/control`, 'dev_config=tcmu-ts/gone/999999999/1');
    await k.system.writeFile(`${dir}/enable`, '1');
    await exportIscsi({ ...k.roots, hba: 4, name: 'gone', allow: [INITIATOR] });
    const [record] = await listDevices(k.roots);
    expect(record).toMatchObject({ name: 'gone', stale: true, iscsi: [{ owned: true, acls: [INITIATOR] }] });
    expect((await removeStale(k.roots)).map((r) => r.name)).toEqual(['gone']);
    expect(await k.snapshot()).toEqual(before);
  });
});
