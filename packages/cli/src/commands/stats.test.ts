import { describe, expect, it } from 'vitest';
import type { StatsSnapshot } from '../metrics.js';
import { writeServerState } from '../state.js';
import { captureIo } from '../test-support.js';
import { statsCommand } from './stats.js';

const snapshot = (reads: number): StatsSnapshot => ({
  name: 'w1',
  uptimeSeconds: 65,
  kinds: {
    read: { commands: reads, bytes: reads * 4096, meanLatencyMs: 0.5 },
    write: { commands: 0, bytes: 0, meanLatencyMs: 0 },
    unmap: { commands: 0, bytes: 0, meanLatencyMs: 0 },
    flush: { commands: 0, bytes: 0, meanLatencyMs: 0 },
    other: { commands: 1, bytes: 36, meanLatencyMs: 0.1 },
  },
  inFlight: 2,
  queued: 0,
  checkConditions: { medium_error: 3 },
  taskManagement: 1,
  aborted: 1,
  backendErrors: 3,
  rates: { windowSeconds: 5, commandsPerSecond: 1000, readBytesPerSecond: 4096000, writeBytesPerSecond: 0 },
  backend: { getRequests: 12, leaseState: 'held' },
});

describe('tcmu stats', () => {
  it('prints the counters again every interval with --watch, until told to stop', async () => {
    const { io, stdout } = captureIo();
    await writeServerState(io.env.TCMU_RUN_DIR!, {
      name: 'w1',
      pid: 4242,
      backend: 'memory:',
      size: 1024,
      blockSize: 512,
      readOnly: false,
      started: new Date().toISOString(),
      device: '/dev/sdq',
      link: undefined,
      metrics: '127.0.0.1:9464',
    });
    let fetched = 0;
    const sleeps: number[] = [];
    const code = await statsCommand(['w1', '--watch', '--interval', '2'], io, {
      fetchStats: async (address) => {
        expect(address).toBe('127.0.0.1:9464');
        return snapshot(++fetched * 10);
      },
      sleep: async (milliseconds) => {
        sleeps.push(milliseconds);
        return sleeps.length < 2;
      },
    });
    expect(code).toBe(0);
    expect(sleeps).toEqual([2000, 2000]);
    const prints = stdout().split(/^(?=w1: )/m);
    expect(prints).toHaveLength(2);
    expect(prints[0]).toBe(
      [
        'w1: up 1m5s, metrics http://127.0.0.1:9464/metrics',
        '  rate (last 5 s): 1000 IOPS, read 3.9 MiB/s, write 0 B/s',
        '  in flight 2, queued 0, task management 1, aborted 1, backend errors 3',
        '  read           10 commands      40 KiB  mean 0.500 ms',
        '  write           0 commands         0 B  mean 0.000 ms',
        '  unmap           0 commands         0 B  mean 0.000 ms',
        '  flush           0 commands         0 B  mean 0.000 ms',
        '  other           1 commands        36 B  mean 0.100 ms',
        '  check conditions: medium_error 3',
        '  backend: getRequests 12, leaseState held',
        '',
      ].join('\n'),
    );
    expect(prints[1]).toMatch(/^ {2}read +20 commands +80 KiB/m);
  });

  it('fails with one line when the endpoint does not answer, and on usage errors', async () => {
    const { io } = captureIo();
    await writeServerState(io.env.TCMU_RUN_DIR!, {
      name: 'w2',
      pid: 1,
      backend: 'memory:',
      size: 1024,
      blockSize: 512,
      readOnly: false,
      started: new Date().toISOString(),
      device: '/dev/sdq',
      link: undefined,
      metrics: '127.0.0.1:1',
    });
    const never = { fetchStats: async () => undefined, sleep: async () => false };
    await expect(statsCommand(['w2'], io, never)).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_NO_METRICS',
      message: 'the metrics endpoint of "w2" (http://127.0.0.1:1) does not answer',
    });
    await expect(statsCommand([], io, never)).rejects.toMatchObject({ code: 'TCMU_ERR_CLI_USAGE' });
    await expect(statsCommand(['w2', '--interval', '0'], io, never)).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_USAGE',
    });
  });
});
