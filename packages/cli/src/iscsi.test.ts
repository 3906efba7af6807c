import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReferenceBackend } from '@tcmu/backend/testing';
import { createUserDevice, listDevices } from '@tcmu/configfs';
import { createFakeKernel, type FakeKernel } from '@tcmu/configfs/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { processServeDependencies, type ServeDependencies, serveCommand } from './commands/serve.js';
import { checkIscsiRequest, extractIscsiArguments, type IscsiRequest, startIscsiExport } from './iscsi.js';
import { createLogger } from './logger.js';
import { captureIo } from './test-support.js';

const CLIENT = 'iqn.2004-10.com.example:client1';
const SECRET = 'a-long-enough-secret';

function usageError(run: () => unknown, message: RegExp) {
  let error: unknown;
  try {
    run();
  } catch (e) {
    error = e;
  }
  expect(error).toMatchObject({ code: 'TCMU_ERR_CLI_USAGE', exitCode: 2 });
  expect(String((error as Error).message)).toMatch(message);
}

describe('extractIscsiArguments', () => {
  it('leaves the other arguments alone and takes --iscsi with or without an address', () => {
    expect(extractIscsiArguments(['memory:', '--size', '1M'])).toEqual({
      rest: ['memory:', '--size', '1M'],
      request: undefined,
    });
    const bare = extractIscsiArguments(['--iscsi', 'memory:', '--iscsi-open', '-s', '1M']);
    expect(bare.rest).toEqual(['memory:', '-s', '1M']);
    expect(bare.request).toEqual({
      portal: '127.0.0.1:3260',
      iqn: undefined,
      allow: [],
      open: true,
      chapUser: undefined,
      chapSecretFile: undefined,
    });
    const given = extractIscsiArguments([
      'file:/x.img',
      '--iscsi',
      '0.0.0.0:3260',
      '--iscsi-allow',
      CLIENT,
      `--iscsi-allow=${CLIENT}2`,
      '--iscsi-iqn=iqn.2024-01.com.example:t',
      '--iscsi-chap-user',
      'alice',
      '--iscsi-chap-secret-file',
      '/etc/secret',
    ]);
    expect(given).toEqual({
      rest: ['file:/x.img'],
      request: {
        portal: '0.0.0.0:3260',
        iqn: 'iqn.2024-01.com.example:t',
        allow: [CLIENT, `${CLIENT}2`],
        open: false,
        chapUser: 'alice',
        chapSecretFile: '/etc/secret',
      },
    });
    expect(extractIscsiArguments(['--iscsi=[::1]:3261', '--iscsi-open']).request?.portal).toBe('[::1]:3261');
  });

  it('refuses incomplete or contradictory requests, and secrets on the command line', () => {
    usageError(() => extractIscsiArguments(['memory:', '--iscsi']), /--iscsi-allow IQN .* or --iscsi-open/);
    usageError(() => extractIscsiArguments(['--iscsi', '--iscsi-open', '--iscsi-allow', CLIENT]), /exclude/);
    usageError(() => extractIscsiArguments(['--iscsi-allow', CLIENT]), /need --iscsi/);
    usageError(() => extractIscsiArguments(['--iscsi', '--iscsi', '--iscsi-open']), /twice/);
    usageError(
      () => extractIscsiArguments(['--iscsi', '--iscsi-open', '--iscsi-chap-secret', SECRET]),
      /ps\)/,
    );
    usageError(
      () => extractIscsiArguments(['--iscsi', '--iscsi-open', `--iscsi-chap-secret=${SECRET}`]),
      /not accepted/,
    );
    usageError(
      () => extractIscsiArguments(['--iscsi', '--iscsi-open', '--iscsi-chap-secret-file', 'f']),
      /needs --iscsi-chap-user/,
    );
    usageError(() => extractIscsiArguments(['--iscsi', '--iscsi-allow']), /needs a value/);
    usageError(() => extractIscsiArguments(['--iscsi', '--iscsi-allow', '--iscsi-open']), /needs a value/);
    usageError(() => extractIscsiArguments(['--iscsi', '--iscsi-opne']), /unknown option "--iscsi-opne"/);
    try {
      extractIscsiArguments(['--iscsi', '--iscsi-open', '--iscsi-chap-secret', SECRET]);
    } catch (error) {
      expect(String(error)).not.toContain(SECRET);
    }
  });
});

describe('checkIscsiRequest', () => {
  const request = (overrides: Partial<IscsiRequest> = {}): IscsiRequest => ({
    portal: '127.0.0.1:3260',
    iqn: undefined,
    allow: [CLIENT],
    open: false,
    chapUser: undefined,
    chapSecretFile: undefined,
    ...overrides,
  });
  const check = async (r: IscsiRequest, env: Record<string, string> = {}) =>
    checkIscsiRequest(r, env, 'vol1').then(
      () => undefined,
      (error: unknown) => error,
    );

  it('accepts a good request and turns bad names, addresses and missing secrets into usage errors', async () => {
    expect(await check(request())).toBeUndefined();
    expect(await check(request({ chapUser: 'u' }), { TCMU_ISCSI_CHAP_SECRET: SECRET })).toBeUndefined();
    for (const [bad, message] of [
      [request({ portal: 'localhost:3260' }), /invalid iSCSI portal/],
      [request({ iqn: 'Target' }), /--iscsi-iqn/],
      [request({ allow: ['client1'] }), /--iscsi-allow/],
      [request({ allow: ['iqn.2003-01.org.linux-iscsi.tcmu:vol1'] }), /target's own IQN/],
      [request({ chapUser: 'u' }), /TCMU_ISCSI_CHAP_SECRET/],
    ] as const) {
      expect(await check(bad)).toMatchObject({
        code: 'TCMU_ERR_CLI_USAGE',
        message: expect.stringMatching(message),
      });
    }
  });
});

describe('startIscsiExport (fake kernel)', () => {
  let kernel: FakeKernel | undefined;
  let folder: string | undefined;
  afterEach(async () => {
    await kernel?.dispose();
    if (folder) await rm(folder, { recursive: true, force: true });
    kernel = undefined;
    folder = undefined;
  });

  it('reads the secret from a file, exports, shows in listDevices, and removes; errors never show the secret', async () => {
    kernel = await createFakeKernel({ portalsInUse: ['0.0.0.0:3260'] });
    folder = await mkdtemp(join(tmpdir(), 'tcmu-iscsi-cli-'));
    const secretFile = join(folder, 'secret');
    await writeFile(secretFile, `${SECRET}\n`);
    await chmod(secretFile, 0o600);
    const device = await createUserDevice({
      ...kernel.roots,
      name: 'vol1',
      size: 1 << 20,
      blockSize: 512,
      serial: 's',
    });
    const before = await kernel.snapshot();
    const logger = createLogger('silent');
    const request: IscsiRequest = {
      portal: '127.0.0.1:3260',
      iqn: undefined,
      allow: [CLIENT],
      open: false,
      chapUser: 'alice',
      chapSecretFile: secretFile,
    };
    const backstore = { name: 'vol1', hba: 0, readOnly: true, roots: kernel.roots };
    const started = await startIscsiExport(request, backstore, {}, logger);
    expect(started.url).toBe('iscsi://127.0.0.1:3260/iqn.2003-01.org.linux-iscsi.tcmu:vol1/0');
    const acl = `${kernel.configfsRoot}/target/iscsi/${started.iqn}/tpgt_1/acls/${CLIENT}`;
    expect((await kernel.system.readFile(`${acl}/auth/password`)).trim()).toBe(SECRET);
    expect((await kernel.system.readFile(`${acl}/lun_0/write_protect`)).trim()).toBe('1');
    expect((await listDevices(kernel.roots))[0]?.iscsi?.[0]).toMatchObject({ iqn: started.iqn, chap: true });
    await started.remove();
    expect(await kernel.snapshot()).toEqual(before);

    const inUse = await startIscsiExport({ ...request, portal: '0.0.0.0:3260' }, backstore, {}, logger).catch(
      (error: unknown) => error,
    );
    expect(inUse).toMatchObject({ code: 'TCMU_ERR_CLI_ISCSI', message: expect.stringMatching(/EADDRINUSE/) });
    expect(String(inUse)).not.toContain(SECRET);
    const missing = await startIscsiExport(
      { ...request, chapSecretFile: join(folder, 'nope') },
      backstore,
      {},
      logger,
    ).catch((error: unknown) => error);
    expect(missing).toMatchObject({ code: 'TCMU_ERR_CLI_ISCSI', message: expect.stringMatching(/ENOENT/) });
    // A secret that is too short is refused, without showing it.
    const short = await startIscsiExport(
      { ...request, chapSecretFile: undefined },
      backstore,
      { TCMU_ISCSI_CHAP_SECRET: 'hunter2' },
      logger,
    ).catch((error: unknown) => error);
    expect(short).toMatchObject({ code: 'TCMU_ERR_CLI_ISCSI', message: expect.stringMatching(/12-255/) });
    expect(String(short)).not.toContain('hunter2');
    expect(await kernel.snapshot()).toEqual(before);
    await device.remove();
  });
});

describe('tcmu serve --iscsi', () => {
  function dependencies(events: string[]): ServeDependencies {
    let stop: ((signal: NodeJS.Signals) => void) | undefined;
    return {
      checkBackend: async () => {},
      preflight: async () => {},
      openBackend: async () => ({
        backend: createReferenceBackend(1 << 20),
        description: 'test',
        close: async () => {
          events.push('close backend');
        },
        discard: async () => {},
      }),
      openDevice: async () => {
        events.push('open device');
        return {
          devicePath: '/dev/sdq',
          close: async () => {
            events.push('close device');
          },
        };
      },
      onStopSignal: (handler) => {
        stop = handler;
        return () => {};
      },
      onFatalError: () => () => {},
      labRunner: async () => undefined,
      notify: async () => false,
      runCommand: processServeDependencies.runCommand,
      startIscsi: async (request, backstore) => {
        events.push(
          `export ${backstore.name} hba ${backstore.hba} ro ${backstore.readOnly} ${request.portal}`,
        );
        if (events.includes('fail')) throw new Error('export failed');
        return {
          iqn: 'iqn.2024-01.com.example:t',
          portal: request.portal,
          url: `iscsi://${request.portal}/iqn.2024-01.com.example:t/0`,
          remove: async () => {
            events.push('remove export');
          },
        };
      },
      get stop() {
        return stop;
      },
    } as ServeDependencies & { stop: unknown };
  }

  it('exports after the disk is served, prints the URL, and removes the export before the disk', async () => {
    const events: string[] = [];
    const deps = dependencies(events);
    const { io, stdout } = captureIo();
    const done = serveCommand(
      [
        'memory:',
        '-s',
        '1M',
        '-n',
        'v',
        '--hba',
        '3',
        '--read-only',
        '--iscsi',
        '--iscsi-open',
        '--log-level',
        'silent',
      ],
      io,
      deps,
    );
    await vi.waitFor(() =>
      expect(stdout()).toBe(
        'ready v /dev/sdq /dev/tcmu/v iscsi://127.0.0.1:3260/iqn.2024-01.com.example:t/0\n',
      ),
    );
    (deps as unknown as { stop: (s: NodeJS.Signals) => void }).stop('SIGTERM');
    expect(await done).toBe(0);
    expect(events).toEqual([
      'open device',
      'export v hba 3 ro true 127.0.0.1:3260',
      'remove export',
      'close device',
      'close backend',
    ]);
  });

  it('a usage error stops before anything is opened; a failed export tears the disk down', async () => {
    const events: string[] = [];
    const { io } = captureIo();
    const usage = await serveCommand(['memory:', '-s', '1M', '--iscsi'], io, dependencies(events)).catch(
      (e: unknown) => e,
    );
    expect(usage).toMatchObject({ code: 'TCMU_ERR_CLI_USAGE', exitCode: 2 });
    expect(events).toEqual([]);
    events.push('fail');
    const failed = await serveCommand(
      ['memory:', '-s', '1M', '--iscsi', '--iscsi-allow', CLIENT, '--log-level', 'silent'],
      io,
      dependencies(events),
    ).catch((e: unknown) => e);
    expect(String(failed)).toMatch(/export failed/);
    expect(events.slice(1)).toEqual([
      'open device',
      'export memory-4242 hba 0 ro false 127.0.0.1:3260',
      'close device',
      'close backend',
    ]);
  });
});
