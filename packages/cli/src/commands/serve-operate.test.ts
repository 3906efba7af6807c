// serve's operating features (stable link, --run, --pidfile, READY=1, --metrics, state for ls/stats,
// trace logs) over a real @tcmu/core ring server on the simulated kernel: only configfs is faked.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '@tcmu/backend';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { serveRing } from '@tcmu/core';
import { SimulatedKernel } from '@tcmu/ring/testing';
import { buildCdb, type CdbFields } from '@tcmu/scsi';
import { describe, expect, it, vi } from 'vitest';
import { readServerState } from '../state.js';
import { captureIo, notifyListener } from '../test-support.js';
import { addServerDetails, type DeviceListing, formatTable } from './ls.js';
import { processServeDependencies, type ServeDependencies, serveCommand } from './serve.js';
import { statsCommand } from './stats.js';

const require = createRequire(import.meta.url);
/** An independent parser of the Prometheus text format (not prom-client's). */
const parsePrometheus = require('parse-prometheus-text-format') as (text: string) => {
  name: string;
  type: string;
  metrics: {
    labels?: Record<string, string>;
    value?: string;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }[];
}[];

/** Dependencies whose device is a real ring server on a simulated kernel (no configfs, no /dev/sdX). */
function simulatedDependencies(overrides: Partial<ServeDependencies> = {}) {
  const kernel = new SimulatedKernel({});
  let backend: Backend | undefined;
  const dependencies: ServeDependencies = {
    ...processServeDependencies,
    checkBackend: async () => {},
    preflight: async () => {},
    openBackend: async (options) => {
      const memory = await openMemoryBackend({ size: options.size ?? 1024 * 1024 });
      // A backend with its own figures (like the S3 backend's stats()).
      backend = Object.assign(memory, { stats: () => ({ cacheHits: 7, leaseState: 'held' }) });
      return { backend, description: 'memory', close: async () => {}, discard: async () => {} };
    },
    openDevice: async (request) => {
      const ring = await kernel.openRing();
      const served = serveRing(ring, {
        backend: request.backend,
        name: request.name,
        size: request.size,
        blockSize: request.blockSize,
        powerOnUnitAttention: false,
        ...(request.onCommandDone ? { onCommandDone: request.onCommandDone } : {}),
      });
      return { devicePath: '/dev/sdz', stats: served.stats, close: () => served.close() };
    },
    onStopSignal: (handler) => {
      stop = handler;
      return () => {};
    },
    onFatalError: () => () => {},
    labRunner: async () => undefined,
    notify: async () => false,
    ...overrides,
  };
  let stop: ((signal: NodeJS.Signals) => void) | undefined;
  return {
    dependencies,
    kernel,
    send: (fields: CdbFields, data: { out?: Uint8Array; inLength?: number } = {}) =>
      kernel.submit({
        cdb: buildCdb(fields),
        ...(data.out ? { dataOut: data.out } : {}),
        ...(data.inLength !== undefined ? { dataInLength: data.inLength } : {}),
      }),
    stop: (signal: NodeJS.Signals = 'SIGTERM') => stop!(signal),
  };
}

const readyEvent = (stdout: string) =>
  JSON.parse(stdout.split('\n').find((line) => line.includes('"ready"'))!) as Record<string, unknown>;

describe('serve --metrics', () => {
  it('serves Prometheus text that an independent parser reads, with figures from real commands', async () => {
    const sim = simulatedDependencies();
    const { io, stdout } = captureIo();
    const done = serveCommand(
      ['memory:', '-s', '1M', '-n', 'm1', '--metrics', '127.0.0.1:0', '--json', '--log-level', 'silent'],
      io,
      sim.dependencies,
    );
    await vi.waitFor(() => expect(stdout()).toContain('"ready"'), { timeout: 10_000 });
    const address = readyEvent(stdout()).metrics as string;
    expect(address).toMatch(/^127\.0\.0\.1:\d+$/);

    expect(
      (await sim.send({ name: 'WRITE(10)', lba: 0n, transferLength: 8 }, { out: new Uint8Array(4096) }))
        .status,
    ).toBe(0);
    for (let i = 0; i < 3; i++)
      await sim.send({ name: 'READ(10)', lba: 0n, transferLength: 2 }, { inLength: 1024 });
    await sim.send({ name: 'SYNCHRONIZE CACHE(10)' });
    await sim.send({ name: 'TEST UNIT READY' });
    // Past the end of the 1 MiB disk: CHECK CONDITION, ILLEGAL REQUEST.
    expect(
      (await sim.send({ name: 'READ(10)', lba: 4096n, transferLength: 1 }, { inLength: 512 })).status,
    ).toBe(2);

    const response = await fetch(`http://${address}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    // The parser throws on any malformed line, so this also checks the whole exposition's syntax.
    const families = new Map(parsePrometheus(text).map((family) => [family.name, family]));
    const value = (name: string, labels: Record<string, string> = {}) =>
      Number(
        families
          .get(name)
          ?.metrics.find((metric) => Object.entries(labels).every(([k, v]) => metric.labels?.[k] === v))
          ?.value,
      );
    expect(families.get('tcmu_commands_total')?.type).toBe('COUNTER');
    expect(value('tcmu_commands_total', { device: 'm1', kind: 'read' })).toBe(4);
    expect(value('tcmu_commands_total', { kind: 'write' })).toBe(1);
    expect(value('tcmu_commands_total', { kind: 'flush' })).toBe(1);
    expect(value('tcmu_commands_total', { kind: 'unmap' })).toBe(0);
    expect(value('tcmu_commands_total', { kind: 'other' })).toBe(1);
    expect(value('tcmu_bytes_total', { kind: 'read' })).toBe(3 * 1024 + 512);
    expect(value('tcmu_bytes_total', { kind: 'write' })).toBe(4096);
    expect(value('tcmu_check_conditions_total', { sense_key: 'illegal_request' })).toBe(1);
    expect(value('tcmu_commands_in_flight')).toBe(0);
    expect(value('tcmu_task_management_total')).toBe(0);
    expect(value('tcmu_backend_stat', { stat: 'cache_hits' })).toBe(7);
    expect(value('tcmu_backend_info', { stat: 'lease_state', value: 'held' })).toBe(1);
    expect(families.get('tcmu_command_duration_seconds')?.type).toBe('HISTOGRAM');
    // parse-prometheus-text-format merges the buckets of a histogram with labels besides `le` (one
    // series per kind here) and drops their _sum/_count, so the per-kind series are read from the lines.
    const sample = (line: RegExp) =>
      Number(
        text
          .split('\n')
          .find((l) => line.test(l))
          ?.split(' ')[1],
      );
    expect(sample(/^tcmu_command_duration_seconds_count\{device="m1",kind="read"\} /)).toBe(4);
    expect(sample(/^tcmu_command_duration_seconds_bucket\{le="\+Inf",device="m1",kind="read"\} /)).toBe(4);
    expect(sample(/^tcmu_command_duration_seconds_sum\{device="m1",kind="read"\} /)).toBeGreaterThan(0);
    expect(sample(/^tcmu_command_duration_seconds_count\{device="m1",kind="write"\} /)).toBe(1);

    // /stats.json: what tcmu ls and tcmu stats read.
    const state = await readServerState(io.env.TCMU_RUN_DIR!, 'm1');
    expect(state).toMatchObject({
      name: 'm1',
      pid: 4242,
      metrics: address,
      blockSize: 512,
      backend: 'memory:',
    });
    const printed = captureIo({ env: io.env });
    expect(await statsCommand(['m1'], printed.io)).toBe(0);
    expect(printed.stdout()).toMatch(/^m1: up \d+s, metrics http:\/\/127\.0\.0\.1:\d+\/metrics\n/);
    expect(printed.stdout()).toMatch(/ {2}read +4 commands +3\.5 KiB +mean \d+\.\d{3} ms\n/);
    expect(printed.stdout()).toMatch(/check conditions: illegal_request 1\n/);
    expect(printed.stdout()).toMatch(/backend: cacheHits 7, leaseState held\n/);
    const json = captureIo({ env: io.env });
    expect(await statsCommand(['m1', '--json'], json.io)).toBe(0);
    expect(JSON.parse(json.stdout())).toMatchObject({
      name: 'm1',
      kinds: { write: { commands: 1, bytes: 4096 } },
    });

    sim.stop();
    expect(await done).toBe(0);
    await expect(fetch(`http://${address}/metrics`)).rejects.toThrow();
    expect(await readServerState(io.env.TCMU_RUN_DIR!, 'm1')).toBeUndefined();
  });

  it('fails before creating the device when the metrics address is taken', async () => {
    const first = simulatedDependencies();
    const one = captureIo();
    const done = serveCommand(
      ['memory:', '-s', '1M', '-n', 'a', '--metrics', ':0', '--json', '--log-level', 'silent'],
      one.io,
      first.dependencies,
    );
    await vi.waitFor(() => expect(one.stdout()).toContain('"ready"'), { timeout: 10_000 });
    const taken = readyEvent(one.stdout()).metrics as string;
    let opened = false;
    const second = simulatedDependencies({
      openDevice: async () => {
        opened = true;
        throw new Error('not reached');
      },
    });
    await expect(
      serveCommand(
        ['memory:', '-s', '1M', '-n', 'b', '--metrics', taken, '--log-level', 'silent'],
        captureIo().io,
        second.dependencies,
      ),
    ).rejects.toMatchObject({ code: 'TCMU_ERR_CLI_METRICS' });
    expect(opened).toBe(false);
    first.stop();
    expect(await done).toBe(0);
  });
});

describe('tcmu ls with serve details', () => {
  it('adds backend, block size, read-only, uptime, link and live rates of a server with metrics', async () => {
    const sim = simulatedDependencies();
    const { io, stdout } = captureIo();
    const done = serveCommand(
      [
        'memory:',
        '-s',
        '1M',
        '-n',
        'l1',
        '--read-only',
        '-b',
        '4096',
        '--metrics',
        ':0',
        '--json',
        '--log-level',
        'silent',
      ],
      io,
      sim.dependencies,
    );
    await vi.waitFor(() => expect(stdout()).toContain('"ready"'), { timeout: 10_000 });
    await sim.send({ name: 'READ(10)', lba: 0n, transferLength: 1 }, { inLength: 4096 });
    const listing: DeviceListing = {
      name: 'l1',
      hba: 0,
      state: 'serving',
      size: 1024 * 1024,
      devices: ['/dev/sdz'],
      genericDevices: [],
      pid: 4242,
      uio: 'uio0',
    };
    const started = Date.parse((await readServerState(io.env.TCMU_RUN_DIR!, 'l1'))!.started);
    const [detailed] = await addServerDetails([listing], io.env.TCMU_RUN_DIR!, started + 125_000);
    expect(detailed!.server).toMatchObject({
      backend: 'memory:',
      blockSize: 4096,
      readOnly: true,
      uptimeSeconds: 125,
      link: '/dev/tcmu/l1',
    });
    expect(detailed!.server!.rates).toBeDefined();
    const table = formatTable([detailed!]).split('\n');
    expect(table[0]).toMatch(
      /^NAME +HBA +STATE +SIZE +DEVICE +PID +BS +RO +UPTIME +LINK +BACKEND +IOPS +READ +WRITE$/,
    );
    expect(table[1]).toMatch(
      /^l1 +0 +serving +1 MiB +\/dev\/sdz +4242 +4096 +yes +2m5s +\/dev\/tcmu\/l1 +memory: +\d+ +\S+ \S+\/s +\S+ \S+\/s$/,
    );
    // Another process's record for the same name (an old pid) is not joined.
    const [other] = await addServerDetails([{ ...listing, pid: 1 }], io.env.TCMU_RUN_DIR!);
    expect(other!.server).toBeUndefined();
    sim.stop();
    expect(await done).toBe(0);
  });

  it('stats refuses a device served without --metrics', async () => {
    const sim = simulatedDependencies();
    const { io, stdout } = captureIo();
    const done = serveCommand(
      ['memory:', '-s', '1M', '-n', 'plain', '--log-level', 'silent'],
      io,
      sim.dependencies,
    );
    await vi.waitFor(() => expect(stdout()).toContain('ready'), { timeout: 10_000 });
    await expect(statsCommand(['plain'], captureIo({ env: io.env }).io)).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_NO_METRICS',
    });
    sim.stop();
    expect(await done).toBe(0);
  });
});

describe('serve --run', () => {
  it('runs the command with TCMU_DEVICE and TCMU_LINK, tears down when it exits, and exits with its status', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'tcmu-run-cmd-'));
    const sim = simulatedDependencies();
    const { io, stdout } = captureIo();
    const status = await serveCommand(
      [
        'memory:',
        '-s',
        '1M',
        '-n',
        'r1',
        '--log-level',
        'silent',
        '--run',
        `echo "$TCMU_DEVICE $TCMU_LINK" > ${folder}/env; test -f "$TCMU_RUN_DIR/r1.json" && exit 7`,
      ],
      io,
      sim.dependencies,
    );
    expect(status).toBe(7);
    expect(readFileSync(join(folder, 'env'), 'utf8')).toBe('/dev/sdz /dev/tcmu/r1\n');
    expect(stdout()).toBe('ready r1 /dev/sdz /dev/tcmu/r1\nstopped r1\n');
    expect(existsSync(join(io.env.TCMU_RUN_DIR!, 'r1.json'))).toBe(false);
  });

  it('passes a stop signal on to the command and exits with its status', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'tcmu-run-cmd-'));
    const sim = simulatedDependencies();
    const { io, stdout } = captureIo();
    const done = serveCommand(
      [
        'memory:',
        '-s',
        '1M',
        '-n',
        'r2',
        '--log-level',
        'silent',
        '--run',
        `touch ${folder}/started; exec sleep 60`,
      ],
      io,
      sim.dependencies,
    );
    await vi.waitFor(() => expect(existsSync(join(folder, 'started'))).toBe(true), { timeout: 10_000 });
    sim.stop('SIGINT');
    expect(await done).toBe(128 + 15);
    expect(stdout()).toBe('ready r2 /dev/sdz /dev/tcmu/r2\nstopped r2\n');
  });

  it('refuses an empty --run', async () => {
    await expect(serveCommand(['memory:', '-s', '1M', '--run', ' '], captureIo().io)).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_USAGE',
    });
  });
});

describe('serve as a service', () => {
  it('writes --pidfile when ready and removes it at teardown', async () => {
    const pidFile = join(mkdtempSync(join(tmpdir(), 'tcmu-pid-')), 'serve.pid');
    const sim = simulatedDependencies();
    const { io, stdout } = captureIo();
    const done = serveCommand(
      ['memory:', '-s', '1M', '-n', 'p1', '--log-level', 'silent', '--pidfile', pidFile],
      io,
      sim.dependencies,
    );
    await vi.waitFor(() => expect(stdout()).toContain('ready'), { timeout: 10_000 });
    expect(readFileSync(pidFile, 'utf8')).toBe('4242\n');
    sim.stop();
    expect(await done).toBe(0);
    expect(existsSync(pidFile)).toBe(false);
  });

  it('fails cleanly when the pid file cannot be written', async () => {
    const sim = simulatedDependencies();
    const { io, stdout } = captureIo();
    await expect(
      serveCommand(
        ['memory:', '-s', '1M', '-n', 'p2', '--log-level', 'silent', '--pidfile', '/nonexistent-dir/x.pid'],
        io,
        sim.dependencies,
      ),
    ).rejects.toMatchObject({ code: 'TCMU_ERR_CLI_PIDFILE' });
    expect(stdout()).toBe('');
    expect(existsSync(join(io.env.TCMU_RUN_DIR!, 'p2.json'))).toBe(false);
  });

  it('sends READY=1 to $NOTIFY_SOCKET after the ready line (a python3 listener stands in for systemd)', async () => {
    const socket = join(mkdtempSync(join(tmpdir(), 'tcmu-notify-')), 'notify');
    const listener = await notifyListener(socket);
    const sim = simulatedDependencies({ notify: processServeDependencies.notify });
    const { io, stdout } = captureIo();
    const env = { ...io.env, NOTIFY_SOCKET: socket };
    const done = serveCommand(
      ['memory:', '-s', '1M', '-n', 'n1', '--log-level', 'silent'],
      { ...io, env },
      sim.dependencies,
    );
    try {
      const message = await listener.received();
      expect(message.split('\n')).toEqual(['READY=1', 'STATUS=serving n1 on /dev/sdz', 'MAINPID=4242']);
      expect(stdout()).toBe('ready n1 /dev/sdz /dev/tcmu/n1\n');
    } finally {
      listener.stop();
      sim.stop();
    }
    expect(await done).toBe(0);
  });
});

describe('serve --log-level trace', () => {
  it('logs each command: opcode name, LBA, blocks, status, sense key and latency', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'tcmu-trace-'));
    const sim = simulatedDependencies();
    const { io, stdout } = captureIo();
    // The logger writes to fd 2; the test reads its JSON lines through a file put there by a child process.
    const log = join(folder, 'log');
    writeFileSync(log, '');
    const { createLogger } = await import('../logger.js');
    const { createWriteStream } = await import('node:fs');
    const stream = createWriteStream(log);
    const logger = createLogger('trace', {}, { format: 'json', destination: stream });
    const { createCommandTracer } = await import('../trace.js');
    const trace = createCommandTracer(logger);
    const done = serveCommand(['memory:', '-s', '1M', '-n', 't1', '--log-level', 'silent'], io, {
      ...sim.dependencies,
      openDevice: (request) => sim.dependencies.openDevice({ ...request, onCommandDone: trace }),
    });
    await vi.waitFor(() => expect(stdout()).toContain('ready'), { timeout: 10_000 });
    await sim.send({ name: 'READ(16)', lba: 3n, transferLength: 2 }, { inLength: 1024 });
    await sim.send({ name: 'READ(10)', lba: 9999n, transferLength: 1 }, { inLength: 512 });
    sim.stop();
    expect(await done).toBe(0);
    await new Promise<void>((resolve) => stream.end(resolve));
    const lines = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines[0]).toMatchObject({
      level: 10,
      op: 'READ(16)',
      lba: 3,
      blocks: 2,
      bytes: 1024,
      status: 'GOOD',
    });
    expect(lines[0].msg).toMatch(/^READ\(16\) lba 3 blocks 2 GOOD \d+(\.\d+)? ms$/);
    expect(lines[1]).toMatchObject({
      op: 'READ(10)',
      lba: 9999,
      status: 'CHECK CONDITION',
      sense: 'illegal_request',
    });
  });
});
