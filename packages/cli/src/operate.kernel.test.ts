// Operating a served disk in the real kernel (run inside the kernel lab): the stable /dev/tcmu/<name>
// link, --pidfile, --metrics read by an independent Prometheus text parser while fio runs, tcmu ls
// and tcmu stats, --run, and what a SIGKILLed server leaves for tcmu rm --stale.
// Uses the built CLI (dist/cli.js): run `pnpm build` first.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeKernel } from '@tcmu/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cli, configfsSnapshot, SLOW, serve, stopAllServers, tcmu } from './kernel-test-support.js';
import { runProgram } from './run-program.js';

const require = createRequire(import.meta.url);
const parsePrometheus = require('parse-prometheus-text-format') as (
  text: string,
) => { name: string; type: string; metrics: { labels?: Record<string, string>; value?: string }[] }[];

/** The value of one series of a parsed exposition (NaN when absent). */
function seriesValue(text: string, name: string, labels: Record<string, string>): number {
  const family = parsePrometheus(text).find((candidate) => candidate.name === name);
  const metric = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return Number(metric?.value);
}

describeKernel('operating a served disk (tcmu CLI) in the real kernel', () => {
  let before: string[] = [];
  let workFolder = '';

  beforeAll(async () => {
    expect(existsSync(cli), `${cli} exists (run pnpm build before the kernel tests)`).toBe(true);
    before = await configfsSnapshot();
    workFolder = await mkdtemp(join(tmpdir(), 'tcmu-operate-kernel-'));
  });

  afterAll(async () => {
    await stopAllServers();
    await rm(workFolder, { recursive: true, force: true });
  });

  it(
    'links /dev/tcmu/<name>, writes --pidfile, and serves metrics that count what fio does; ls and stats show it; SIGTERM removes it all',
    async () => {
      const pidFile = join(workFolder, 'serve.pid');
      const server = await serve([
        'memory:',
        '--size',
        '64M',
        '--name',
        'k-ops',
        '--metrics',
        '127.0.0.1:0',
        '--pidfile',
        pidFile,
      ]);
      try {
        const link = server.event.link as string;
        const metrics = server.event.metrics as string;
        expect(link).toBe('/dev/tcmu/k-ops');
        expect(await readlink(link)).toBe(server.device);
        expect(await readFile(pidFile, 'utf8')).toBe(`${server.child.pid}\n`);

        const fio = runProgram(
          'fio',
          [
            '--name=ops',
            `--filename=${link}`,
            '--direct=1',
            '--ioengine=libaio',
            '--rw=randrw',
            '--bs=4k',
            '--iodepth=8',
            '--size=32M',
            '--runtime=6',
            '--time_based',
            '--output-format=json',
          ],
          { timeoutMilliseconds: 300_000 },
        );
        // While fio runs: ls shows live rates, and the endpoint answers.
        await new Promise((resolve) => setTimeout(resolve, 3500));
        const during = await (await fetch(`http://${metrics}/metrics`)).text();
        const listed = JSON.parse((await tcmu(['ls', '--json'])).stdout) as {
          name: string;
          server?: { rates?: { commandsPerSecond: number }; link?: string; blockSize: number };
        }[];
        const mine = listed.find((entry) => entry.name === 'k-ops');
        expect(mine?.server).toMatchObject({ link, blockSize: 512 });
        expect(mine?.server?.rates, 'ls got the live rates from the metrics endpoint').toBeDefined();
        const liveIops = mine?.server?.rates?.commandsPerSecond ?? 0;
        expect(liveIops).toBeGreaterThan(0);
        const table = await tcmu(['ls']);
        expect(table.stdout).toMatch(/^NAME .* IOPS +READ +WRITE$/m);

        const result = await fio;
        expect(result.exitCode, result.stderr).toBe(0);
        const job = (
          JSON.parse(result.stdout.slice(result.stdout.indexOf('{'))) as {
            jobs: {
              read: { total_ios: number; io_bytes: number };
              write: { total_ios: number; io_bytes: number };
            }[];
          }
        ).jobs[0]!;
        const after = await (await fetch(`http://${metrics}/metrics`)).text();
        const reads = seriesValue(after, 'tcmu_commands_total', { device: 'k-ops', kind: 'read' });
        const writes = seriesValue(after, 'tcmu_commands_total', { device: 'k-ops', kind: 'write' });
        const readBytes = seriesValue(after, 'tcmu_bytes_total', { device: 'k-ops', kind: 'read' });
        const writeBytes = seriesValue(after, 'tcmu_bytes_total', { device: 'k-ops', kind: 'write' });
        console.log(
          `fio: ${job.read.total_ios} reads, ${job.write.total_ios} writes; metrics: ${reads} reads (${readBytes} bytes), ${writes} writes (${writeBytes} bytes); live IOPS seen by ls during fio: ${liveIops.toFixed(0)}; read commands counted mid-run: ${seriesValue(during, 'tcmu_commands_total', { device: 'k-ops', kind: 'read' })}`,
        );
        // Every fio I/O is one SCSI command (4 KiB, O_DIRECT); the kernel adds its own (partition scan reads).
        expect(reads).toBeGreaterThanOrEqual(job.read.total_ios);
        expect(writes).toBeGreaterThanOrEqual(job.write.total_ios);
        expect(writeBytes).toBeGreaterThanOrEqual(job.write.io_bytes);
        expect(seriesValue(after, 'tcmu_commands_in_flight', { device: 'k-ops' })).toBe(0);
        expect(after).toMatch(/^tcmu_command_duration_seconds_count\{device="k-ops",kind="read"\} \d+$/m);

        const stats = await tcmu(['stats', 'k-ops']);
        expect(stats.exitCode, stats.stderr).toBe(0);
        console.log(stats.stdout);
        expect(stats.stdout).toMatch(/^ {2}read +\d+ commands/m);

        expect(await server.stop('SIGTERM')).toBe(0);
        expect(existsSync(link)).toBe(false);
        expect(existsSync(pidFile)).toBe(false);
        const gone = await tcmu(['stats', 'k-ops']);
        expect(gone.exitCode).toBe(1);
        expect(await configfsSnapshot()).toEqual(before);
      } finally {
        if (server.child.exitCode === null) await server.stop('SIGTERM');
      }
    },
    SLOW,
  );

  it(
    '--run runs the command against the disk ($TCMU_DEVICE, $TCMU_LINK), tears down when it exits and exits with its status',
    async () => {
      const result = await tcmu([
        'serve',
        'memory:',
        '--size',
        '64M',
        '--name',
        'k-run',
        '--log-level',
        'warn',
        '--run',
        'mkfs.ext4 -q "$TCMU_LINK" && test -b "$TCMU_DEVICE" && test "$(readlink "$TCMU_LINK")" = "$TCMU_DEVICE" && exit 5',
      ]);
      expect(result.exitCode, result.stderr).toBe(5);
      expect(result.stdout).toMatch(
        /^ready k-run \/dev\/sd[a-z]+ \/dev\/tcmu\/k-run window \d+s\nstopped k-run\n$/,
      );
      expect(existsSync('/dev/tcmu/k-run')).toBe(false);
      expect(await configfsSnapshot()).toEqual(before);
    },
    SLOW,
  );

  it(
    'after a SIGKILL the link is left dangling-to-be; tcmu rm --stale removes the device, the link and the record',
    async () => {
      const server = await serve(['memory:', '--size', '16M', '--name', 'k-dead']);
      expect(await readlink('/dev/tcmu/k-dead')).toBe(server.device);
      expect(await server.stop('SIGKILL')).toBe('SIGKILL');
      const removed = await tcmu(['rm', '--stale']);
      expect(removed.exitCode, removed.stderr).toBe(0);
      expect(removed.stdout).toMatch(/^removed k-dead \(stale, hba \d+; link \/dev\/tcmu\/k-dead\)$/m);
      expect(existsSync('/dev/tcmu/k-dead')).toBe(false);
      expect(existsSync('/run/tcmu/k-dead.json')).toBe(false);
      expect(await configfsSnapshot()).toEqual(before);
    },
    SLOW,
  );
});
