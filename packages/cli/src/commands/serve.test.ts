import type { Backend } from '@tcmu/backend';
import { createReferenceBackend } from '@tcmu/backend/testing';
import { describe, expect, it, vi } from 'vitest';
import type { CliError } from '../errors.js';
import { captureIo } from '../test-support.js';
import {
  type DeviceOpenRequest,
  processServeDependencies,
  type ServeDependencies,
  serveCommand,
} from './serve.js';

const coded = (code: string, message: string) => Object.assign(new Error(message), { code });

/** Fake device library and signals: records what serve did, lets the test send SIGTERM. */
function fakeDependencies(overrides: Partial<ServeDependencies> = {}) {
  const events: string[] = [];
  let signalHandler: ((signal: NodeJS.Signals) => void) | undefined;
  let fatalHandler: ((error: unknown) => void) | undefined;
  let backend: Backend | undefined;
  const requests: DeviceOpenRequest[] = [];
  const dependencies: ServeDependencies = {
    checkBackend: async () => {
      events.push('check');
    },
    preflight: async () => {
      events.push('preflight');
    },
    openBackend: async (options) => {
      events.push(`open backend ${options.backend.kind} ${options.size}`);
      backend = createReferenceBackend(options.size ?? 1024 * 1024);
      return {
        backend,
        description: 'a test backend',
        close: async () => {
          events.push('close backend');
        },
        discard: async () => {
          events.push('discard backend');
        },
      };
    },
    openDevice: async (request) => {
      requests.push(request);
      events.push(`open device ${request.name}`);
      return {
        devicePath: '/dev/sdq',
        close: async () => {
          events.push('close device');
        },
      };
    },
    onFatalError: (handler) => {
      fatalHandler = handler;
      return () => {};
    },
    onStopSignal: (handler) => {
      signalHandler = handler;
      events.push('signals on');
      return () => {
        events.push('signals off');
      };
    },
    labRunner: async () => '/repo/tools/lab/run',
    notify: async (state) => {
      events.push(`notify ${state.split('\n')[0]}`);
      return true;
    },
    runCommand: processServeDependencies.runCommand,
    ...overrides,
  };
  return {
    dependencies,
    events,
    requests,
    signal: (name: NodeJS.Signals) => signalHandler!(name),
    fatal: (error: unknown) => fatalHandler!(error),
    backend: () => backend,
  };
}

describe('tcmu serve', () => {
  it('prints the ready line, waits for SIGTERM, then drains and tears down in order', async () => {
    const fake = fakeDependencies();
    const { io, stdout } = captureIo();
    const done = serveCommand(
      ['memory:', '--size', '64M', '--name', 'd1', '--log-level', 'silent'],
      io,
      fake.dependencies,
    );
    await vi.waitFor(() => expect(stdout()).toBe('ready d1 /dev/sdq /dev/tcmu/d1\n'));
    expect(fake.events).toEqual([
      'signals on',
      'check',
      'preflight',
      `open backend memory ${64 * 1024 ** 2}`,
      'open device d1',
      'notify READY=1',
    ]);
    fake.signal('SIGTERM');
    expect(await done).toBe(0);
    expect(stdout()).toBe('ready d1 /dev/sdq /dev/tcmu/d1\nstopped d1\n');
    expect(fake.events.slice(6)).toEqual([
      'notify STOPPING=1',
      'close device',
      'close backend',
      'signals off',
    ]);
  });

  it('passes every option to the device', async () => {
    const fake = fakeDependencies();
    const { io, stdout } = captureIo();
    const done = serveCommand(
      [
        'memory:',
        '-s',
        '8M',
        '-n',
        'x',
        '-b',
        '4096',
        '--lun',
        '2',
        '--hba',
        '9',
        '--read-only',
        '--queue-depth',
        '16',
        '--idle-spin-us',
        '250',
        '--log-level',
        'silent',
      ],
      io,
      fake.dependencies,
    );
    await vi.waitFor(() => expect(stdout()).toContain('ready'));
    fake.signal('SIGINT');
    await done;
    expect(fake.requests[0]).toMatchObject({
      name: 'x',
      size: 8 * 1024 ** 2,
      blockSize: 4096,
      lun: 2,
      hba: 9,
      readOnly: true,
      queueDepth: 16,
      idleSpinMicroseconds: 250,
      backend: fake.backend(),
    });
  });

  it('asks for the restart window and prints it, and a take-over, on the ready line and event', async () => {
    const device = {
      devicePath: '/dev/sdq',
      takenOver: true,
      window: { commandTimeoutSeconds: 90, queueFullTimeoutSeconds: 90, scsiTimeoutSeconds: 105 },
      close: async () => {},
    };
    for (const json of [false, true]) {
      const fake = fakeDependencies({
        openDevice: async (request) => {
          fake.requests.push(request);
          return device;
        },
      });
      const { io, stdout } = captureIo();
      const done = serveCommand(
        [
          'memory:',
          '-s',
          '8M',
          '-n',
          'w',
          '--command-timeout',
          '90',
          '--log-level',
          'silent',
          ...(json ? ['--json'] : []),
        ],
        io,
        fake.dependencies,
      );
      await vi.waitFor(() => expect(stdout()).toContain('ready'));
      fake.signal('SIGTERM');
      await done;
      expect(fake.requests[0]).toMatchObject({
        commandTimeoutSeconds: 90,
        scsiTimeoutSeconds: undefined,
        takeOver: false, // memory: its data died with the old server
      });
      const first = stdout().split('\n')[0]!;
      if (json)
        expect(JSON.parse(first)).toMatchObject({ event: 'ready', takenOver: true, window: device.window });
      else expect(first).toBe('ready w /dev/sdq /dev/tcmu/w window 90s (taken over)');
    }
  });

  it('asks to take over a dead server’s device for file: and s3: backends only (their data outlives it)', async () => {
    for (const [backend, expected] of [
      ['file:/x.img', true],
      ['memory:', false],
    ] as const) {
      const fake = fakeDependencies();
      const { io, stdout } = captureIo();
      const done = serveCommand(
        [backend, '-s', '8M', '-n', 't', '--log-level', 'silent'],
        io,
        fake.dependencies,
      );
      await vi.waitFor(() => expect(stdout()).toContain('ready'));
      fake.signal('SIGTERM');
      await done;
      expect(fake.requests[0]?.takeOver).toBe(expected);
    }
  });

  it('prints JSON lines with --json', async () => {
    const fake = fakeDependencies();
    const { io, stdout } = captureIo();
    const done = serveCommand(
      ['memory:', '--size', '1M', '--json', '--log-level', 'silent'],
      io,
      fake.dependencies,
    );
    await vi.waitFor(() => expect(stdout()).toContain('\n'));
    expect(JSON.parse(stdout())).toEqual({
      event: 'ready',
      name: 'memory-4242',
      device: '/dev/sdq',
      link: '/dev/tcmu/memory-4242',
      size: 1024 ** 2,
      blockSize: 512,
      backend: 'memory:',
      readOnly: false,
      pid: 4242,
    });
    fake.signal('SIGTERM');
    expect(await done).toBe(0);
    const lines = stdout()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines[1]).toEqual({ event: 'stopped', name: 'memory-4242', signal: 'SIGTERM', status: 0 });
  });

  it('a signal during setup stops right after setup, without a ready line', async () => {
    let finishOpen: () => void = () => {};
    const fake = fakeDependencies();
    const openDevice = fake.dependencies.openDevice;
    fake.dependencies.openDevice = async (request) => {
      await new Promise<void>((resolve) => {
        finishOpen = resolve;
      });
      return openDevice(request);
    };
    const { io, stdout } = captureIo();
    const done = serveCommand(['memory:', '--size', '1M', '--log-level', 'silent'], io, fake.dependencies);
    await vi.waitFor(() => expect(fake.events).toContain('open backend memory 1048576'));
    fake.signal('SIGINT');
    fake.signal('SIGINT');
    finishOpen();
    expect(await done).toBe(0);
    expect(stdout()).toBe('stopped memory-4242\n');
    expect(fake.events).toContain('close device');
  });

  it('when the device cannot be created, closes and discards the backend and explains the error', async () => {
    const fake = fakeDependencies({
      openDevice: async () => {
        throw Object.assign(
          new Error('open failed', { cause: coded('TCMU_ERR_ALREADY_EXISTS', 'user_0/d1 exists') }),
          {
            code: 'TCMU_ERR_CORE_OPEN',
          },
        );
      },
    });
    const { io, stdout } = captureIo();
    const failure = serveCommand(
      ['memory:', '--size', '1M', '-n', 'd1', '--log-level', 'silent'],
      io,
      fake.dependencies,
    );
    await expect(failure).rejects.toMatchObject({ code: 'TCMU_ERR_CLI_NAME_IN_USE' });
    expect(fake.events.slice(-3)).toEqual(['close backend', 'discard backend', 'signals off']);
    expect(stdout()).toBe('');
  });

  it('a stop signal during setup cancels opening the backend at once (the signal reaches openBackend)', async () => {
    let seen: AbortSignal | undefined;
    const fake = fakeDependencies({
      openBackend: (_options, _logger, signal) => {
        seen = signal;
        return new Promise((_, reject) =>
          signal!.addEventListener('abort', () =>
            reject(Object.assign(new Error('cancelled'), { code: 'TCMU_ERR_BACKEND_OPEN' })),
          ),
        );
      },
    });
    const { io } = captureIo();
    const serving = serveCommand(
      ['memory:', '--size', '1M', '--log-level', 'silent'],
      io,
      fake.dependencies,
    ).catch((e: unknown) => e);
    await vi.waitFor(() => expect(seen).toBeDefined());
    expect(seen!.aborted).toBe(false);
    fake.signal('SIGINT');
    await serving;
    expect(seen!.aborted).toBe(true);
    expect(fake.events).not.toContain('open device');
  });

  it('reports a kernel without TCMU with the way to the lab, before opening anything', async () => {
    const fake = fakeDependencies({
      preflight: async () => {
        throw coded('TCMU_ERR_MODULE_MISSING', 'kernel modules missing: target_core_user');
      },
    });
    const { io } = captureIo();
    const error = (await serveCommand(
      ['memory:', '--size', '1M', '--log-level', 'silent'],
      io,
      fake.dependencies,
    ).catch((e: unknown) => e)) as CliError;
    expect(error.code).toBe('TCMU_ERR_CLI_NO_TCMU');
    expect(error.hint).toMatch(/kernel lab: \/repo\/tools\/lab\/run/);
    expect(fake.events).toEqual(['signals on', 'check', 'signals off']);
  });

  it('refuses a backend whose size is not a whole number of blocks', async () => {
    const fake = fakeDependencies({
      openBackend: async () => ({
        backend: createReferenceBackend(4096 + 512),
        description: 'odd',
        close: async () => {},
        discard: async () => {},
      }),
    });
    const { io } = captureIo();
    await expect(
      serveCommand(['file:/x.img', '-b', '4096', '--log-level', 'silent'], io, fake.dependencies),
    ).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_BLOCK_SIZE',
      message: expect.stringMatching(/4608 bytes/),
    });
  });

  it('an uncaught error while serving tears the device down, then fails with it', async () => {
    const fake = fakeDependencies();
    const { io, stdout } = captureIo();
    const done = serveCommand(
      ['memory:', '--size', '1M', '-n', 'f', '--log-level', 'silent'],
      io,
      fake.dependencies,
    );
    await vi.waitFor(() => expect(stdout()).toBe('ready f /dev/sdq /dev/tcmu/f\n'));
    const bug = new TypeError('x is not a function');
    fake.fatal(bug);
    await expect(done).rejects.toBe(bug);
    expect(fake.events.slice(-3)).toEqual(['close device', 'close backend', 'signals off']);
    expect(stdout()).toBe('ready f /dev/sdq /dev/tcmu/f\n');
  });

  it('a teardown step that fails on stop leaves the later steps to the failure path, which keeps a created backend', async () => {
    const fake = fakeDependencies();
    const openDevice = fake.dependencies.openDevice;
    fake.dependencies.openDevice = async (request) => ({
      ...(await openDevice(request)),
      close: async () => {
        fake.events.push('close device fails');
        throw coded('TCMU_ERR_CONFIGFS_IO', 'rmdir failed: EBUSY');
      },
    });
    const { io, stdout } = captureIo();
    const done = serveCommand(
      ['memory:', '--size', '1M', '-n', 'g', '--log-level', 'silent'],
      io,
      fake.dependencies,
    );
    await vi.waitFor(() => expect(stdout()).toBe('ready g /dev/sdq /dev/tcmu/g\n'));
    fake.signal('SIGTERM');
    await expect(done).rejects.toMatchObject({ message: expect.stringMatching(/EBUSY/) });
    // The disk was ready, so it may hold data: the backend this start created is closed, never
    // discarded (a created file image stays).
    expect(fake.events.slice(-5)).toEqual([
      'notify STOPPING=1',
      'close device fails',
      'close device fails',
      'close backend',
      'signals off',
    ]);
    expect(fake.events).not.toContain('discard backend');
    expect(stdout()).toBe('ready g /dev/sdq /dev/tcmu/g\n');
  });

  it('prints help', async () => {
    const { io, stdout } = captureIo();
    expect(await serveCommand(['--help'], io, fakeDependencies().dependencies)).toBe(0);
    expect(stdout()).toMatch(/^Usage: tcmu serve/);
  });
});
