// The `tcmu` command against the real kernel (run inside the kernel lab): `tcmu serve` as a child
// process serves a disk that mkfs.ext4, mount, e2fsck and fio judge; signals tear it down leaving
// configfs exactly as before; bad input leaves nothing behind; ls/rm clean up after a SIGKILLed
// server; the demo passes. Uses the built CLI (dist/cli.js): run `pnpm build` first.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeKernel } from '@tcmu/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  cli,
  configfsSnapshot,
  must,
  type Server,
  SLOW,
  serve,
  stopAllServers,
  tcmu,
} from './kernel-test-support.js';
import { runProgram } from './run-program.js';

/** Waits for every promise (none left running), then throws the first failure, if any. */
async function settleAll<T>(promises: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return results.map((result) => (result as PromiseFulfilledResult<T>).value);
}

/** Writes `count` files of random data onto a mounted file system (with cp), returns name → sha256. */
async function writeRandomFiles(
  mountPoint: string,
  count: number,
  size: number,
): Promise<Map<string, string>> {
  const staging = await mkdtemp(join(tmpdir(), 'tcmu-kernel-files-'));
  const sums = new Map<string, string>();
  const paths: string[] = [];
  for (let index = 0; index < count; index++) {
    const name = `file-${index}.bin`;
    const content = randomBytes(size);
    sums.set(name, createHash('sha256').update(content).digest('hex'));
    await writeFile(join(staging, name), content);
    paths.push(join(staging, name));
  }
  await must('cp', [...paths, `${mountPoint}/`]);
  await rm(staging, { recursive: true, force: true });
  await must('sync', ['-f', mountPoint]);
  return sums;
}

/** Reads the files back (sha256sum, a child process) and returns name → sha256. */
async function readSums(mountPoint: string, names: Iterable<string>): Promise<Map<string, string>> {
  const output = await must(
    'sha256sum',
    [...names].map((name) => join(mountPoint, name)),
  );
  const sums = new Map<string, string>();
  for (const line of output.trim().split('\n')) {
    const [sum, path] = line.split(/\s+\*?/, 2) as [string, string];
    sums.set(path.slice(mountPoint.length + 1), sum);
  }
  return sums;
}

describeKernel('tcmu (the CLI) in the real kernel', () => {
  let before: string[] = [];
  let workFolder = '';

  beforeAll(async () => {
    expect(existsSync(cli), `${cli} exists (run pnpm build before the kernel tests)`).toBe(true);
    before = await configfsSnapshot();
    workFolder = await mkdtemp(join(tmpdir(), 'tcmu-cli-kernel-'));
  });

  afterAll(async () => {
    // Servers a failed test left behind: stop them properly (SIGKILL would leave stale devices).
    await stopAllServers();
    await rm(workFolder, { recursive: true, force: true });
  });

  // Memory and file backends, 512- and 4096-byte blocks: four disks at once (the lab is slow, and several
  // `tcmu serve` processes side by side is what users do). Servers start one after the other and stop in
  // the reverse order, so configfs's shared folders (the loopback fabric) are created and removed by the
  // same process and configfs ends exactly as it began.
  it(
    'serves memory and file disks with 512- and 4096-byte blocks (four at once): mkfs.ext4, mount, write, fsck -fn clean, remount, identical checksums; SIGTERM/SIGINT exit 0 and leave configfs as before',
    async () => {
      const combinations = [
        { backend: 'memory', blockSize: 512 },
        { backend: 'memory', blockSize: 4096 },
        { backend: 'file', blockSize: 512 },
        { backend: 'file', blockSize: 4096 },
      ];
      const size = 64 * 1024 * 1024;
      const disks = combinations.map(({ backend, blockSize }) => ({
        backend,
        blockSize,
        label: `${backend} ${blockSize}`,
        location: backend === 'memory' ? 'memory:' : `file:${join(workFolder, `disk-${blockSize}.img`)}`,
        common: ['--block-size', String(blockSize), '--name', `k-${backend}-${blockSize}`],
      }));

      const servers: Server[] = [];
      for (const disk of disks)
        servers.push(await serve([disk.location, '--size', String(size), ...disk.common]));
      const written = await settleAll(
        disks.map(async (disk, index) => {
          const server = servers[index]!;
          const sysfsName = server.device.slice('/dev/'.length);
          const logical = (await readFile(`/sys/block/${sysfsName}/queue/logical_block_size`, 'utf8')).trim();
          expect(logical, disk.label).toBe(String(disk.blockSize));
          expect(Number(await readFile(`/sys/block/${sysfsName}/size`, 'utf8')) * 512, disk.label).toBe(size);
          const mountPoint = await mkdtemp(join(tmpdir(), 'tcmu-cli-mnt-'));
          await must('mkfs.ext4', ['-F', '-q', server.device]);
          await must('mount', [server.device, mountPoint]);
          const sums = await writeRandomFiles(mountPoint, 6, 512 * 1024);
          await must('umount', [mountPoint]);
          const fsck = await runProgram('e2fsck', ['-fn', server.device]);
          expect(fsck.exitCode, `${disk.label}: ${fsck.stdout}${fsck.stderr}`).toBe(0);
          await must('mount', [server.device, mountPoint]);
          expect(await readSums(mountPoint, sums.keys()), disk.label).toEqual(sums);
          await must('umount', [mountPoint]);
          await rm(mountPoint, { recursive: true, force: true });
          return sums;
        }),
      );
      for (const server of servers.reverse()) expect(await server.stop('SIGTERM'), server.name).toBe(0);
      expect(await configfsSnapshot()).toEqual(before);

      // The images outlive their processes: serve them again, read-only at their own size, read the files.
      const files = disks.flatMap((disk, index) =>
        disk.backend === 'file' ? [{ disk, sums: written[index]! }] : [],
      );
      const again: Server[] = [];
      for (const { disk } of files) again.push(await serve([disk.location, ...disk.common, '--read-only']));
      await settleAll(
        files.map(async ({ disk, sums }, index) => {
          const mountPoint = await mkdtemp(join(tmpdir(), 'tcmu-cli-mnt-'));
          // --read-only: the kernel sees a write-protected disk.
          const sysfsName = again[index]!.device.slice('/dev/'.length);
          expect((await readFile(`/sys/block/${sysfsName}/ro`, 'utf8')).trim(), disk.label).toBe('1');
          await must('mount', ['-o', 'ro', again[index]!.device, mountPoint]);
          expect(await readSums(mountPoint, sums.keys()), disk.label).toEqual(sums);
          await must('umount', [mountPoint]);
          await rm(mountPoint, { recursive: true, force: true });
        }),
      );
      for (const server of again.reverse()) expect(await server.stop('SIGINT'), server.name).toBe(0);
      expect(await configfsSnapshot()).toEqual(before);
    },
    SLOW,
  );

  it(
    'passes fio randwrite with --verify=crc32c (libaio, direct, iodepth 16)',
    async () => {
      const server = await serve(['memory:', '--size', '64M', '--name', 'k-fio']);
      const result = await runProgram(
        'fio',
        [
          '--name=verify',
          `--filename=${server.device}`,
          '--ioengine=libaio',
          '--direct=1',
          '--iodepth=16',
          '--rw=randwrite',
          '--bs=4k',
          '--size=16M',
          '--verify=crc32c',
          '--do_verify=1',
          '--verify_fatal=1',
          '--output-format=json',
        ],
        { timeoutMilliseconds: 600_000 },
      );
      expect(result.exitCode, result.stderr).toBe(0);
      const job = (
        JSON.parse(result.stdout) as {
          jobs: { error: number; write: { io_bytes: number }; read: { io_bytes: number } }[];
        }
      ).jobs[0]!;
      expect(job.error).toBe(0);
      expect(job.write.io_bytes).toBe(16 * 1024 * 1024);
      expect(job.read.io_bytes).toBe(16 * 1024 * 1024); // the verify pass read everything back
      expect(await server.stop('SIGTERM')).toBe(0);
      expect(await configfsSnapshot()).toEqual(before);
    },
    SLOW,
  );

  it(
    'answers bad input with one line, a non-zero exit and configfs unchanged',
    async () => {
      const cases: [string[], RegExp, { user?: number }?][] = [
        [['serve', 'memory:', '--size', '12X'], /invalid size "12X".*TCMU_ERR_CLI_SIZE/],
        [
          ['serve', 'memory:', '--size', '1M', '--block-size', '1024'],
          /use 512 or 4096.*TCMU_ERR_CLI_BLOCK_SIZE/,
        ],
        [
          ['serve', 'nbd://host/x', '--size', '1M'],
          /unknown backend scheme "nbd:".*TCMU_ERR_CLI_BACKEND_URL/,
        ],
        [
          ['serve', `file:${workFolder}/missing/disk.img`, '--size', '8M'],
          /folder .*missing does not exist.*TCMU_ERR_CLI_FILE/,
        ],
        [['serve', 'memory:', '--size', '8M'], /needs root.*TCMU_ERR_CLI_NOT_ROOT/, { user: 65534 }],
      ];
      // All at once (each is a separate process): the lab is slow.
      const results = await Promise.all(
        cases.map(([args, , options]) => tcmu([...args, '--log-level', 'silent'], options)),
      );
      for (const [index, [args, message]] of cases.entries()) {
        const result = results[index]!;
        expect(result.exitCode, args.join(' ')).not.toBe(0);
        const lines = result.stderr.trimEnd().split('\n');
        expect(lines, args.join(' ')).toHaveLength(1);
        expect(lines[0]).toMatch(message);
        expect(result.stdout).toBe('');
      }
      expect(await configfsSnapshot()).toEqual(before);
    },
    SLOW,
  );

  it(
    'refuses a name already in use, leaving the first device serving and configfs as it was',
    async () => {
      const first = await serve(['memory:', '--size', '16M', '--name', 'k-taken']);
      const during = await configfsSnapshot();
      const second = await tcmu([
        'serve',
        'memory:',
        '--size',
        '16M',
        '--name',
        'k-taken',
        '--log-level',
        'silent',
      ]);
      expect(second.exitCode).toBe(1);
      expect(second.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(second.stderr).toMatch(/"k-taken" is already in use.*TCMU_ERR_CLI_NAME_IN_USE/);
      expect(await configfsSnapshot()).toEqual(during);
      await must('sg_readcap', [first.device]);
      expect(await first.stop('SIGTERM')).toBe(0);
      expect(await configfsSnapshot()).toEqual(before);
    },
    SLOW,
  );

  it(
    'lists a SIGKILLed server’s device as stale, and tcmu rm --stale removes it',
    async () => {
      const server = await serve(['memory:', '--size', '16M', '--name', 'k-killed']);
      const listedLive = JSON.parse((await tcmu(['ls', '--json'])).stdout) as {
        name: string;
        state: string;
        devices: string[];
      }[];
      expect(listedLive.find((d) => d.name === 'k-killed')).toMatchObject({
        state: 'serving',
        devices: [server.device],
      });
      expect(await server.stop('SIGKILL')).toBe('SIGKILL');
      const listed = await tcmu(['ls', '--json']);
      expect(listed.exitCode).toBe(0);
      expect(
        (JSON.parse(listed.stdout) as { name: string; state: string }[]).find((d) => d.name === 'k-killed'),
      ).toMatchObject({
        state: 'stale',
      });
      const table = await tcmu(['ls']);
      expect(table.stdout).toMatch(/k-killed\s+\d+\s+stale/);
      const removed = await tcmu(['rm', '--stale']);
      expect(removed.exitCode, removed.stderr).toBe(0);
      expect(removed.stdout).toMatch(/^removed k-killed \(stale, hba \d+; link \/dev\/tcmu\/k-killed\)$/m);
      expect(existsSync('/dev/tcmu/k-killed')).toBe(false);
      expect(await configfsSnapshot()).toEqual(before);
    },
    SLOW,
  );

  it(
    'tcmu rm NAME stops a live server (it drains and exits 0) and leaves configfs as before',
    async () => {
      const server = await serve(['memory:', '--size', '16M', '--name', 'k-rm']);
      const exited = new Promise((resolve) => server.child.once('exit', (code) => resolve(code)));
      const removed = await tcmu(['rm', 'k-rm']);
      expect(removed.exitCode, removed.stderr).toBe(0);
      expect(removed.stdout).toBe(`removed k-rm (stopped pid ${server.child.pid})\n`);
      expect(await exited).toBe(0);
      expect(await configfsSnapshot()).toEqual(before);
    },
    SLOW,
  );

  // Issue 12: N servers started at the same instant share the HBA (core/user_0) and the loopback
  // fabric folder; whoever removes the last device removes them, in any order.
  const together = (prefix: string, count: number) =>
    settleAll(
      Array.from({ length: count }, (_, i) =>
        serve(['memory:', '--size', '16M', '--name', `${prefix}${i}`, '--log-level', 'warn']),
      ),
    );

  it(
    'eight tcmu serve started at the same instant all come up, and SIGTERM in random order leaves configfs as before',
    async () => {
      const servers = await together('k-par', 8);
      expect(new Set(servers.map((server) => server.device)).size).toBe(8);
      const order = servers
        .map((server) => ({ server, key: Math.random() }))
        .sort((a, b) => a.key - b.key)
        .map(({ server }) => server);
      // Stopped one after the other in a random order, the last ones all at once.
      for (const server of order.slice(0, 5)) expect(await server.stop('SIGTERM'), server.stderr()).toBe(0);
      const codes = await Promise.all(order.slice(5).map((server) => server.stop('SIGTERM')));
      expect(codes).toEqual([0, 0, 0]);
      expect(await configfsSnapshot()).toEqual(before);
    },
    SLOW,
  );

  it(
    'eight tcmu serve started at once and removed with tcmu rm in creation order, then eight in reverse order, leave configfs as before',
    async () => {
      for (const reverse of [false, true]) {
        const prefix = reverse ? 'k-rev' : 'k-fwd';
        const servers = await together(prefix, 8);
        const exited = servers.map(
          (server) => new Promise((resolve) => server.child.once('exit', (code) => resolve(code))),
        );
        const names = servers.map((server) => server.name);
        const removed = await tcmu(['rm', ...(reverse ? [...names].reverse() : names)]);
        expect(removed.exitCode, removed.stderr).toBe(0);
        expect(removed.stdout.trim().split('\n')).toHaveLength(8);
        expect(await Promise.all(exited)).toEqual(Array(8).fill(0));
        expect(await configfsSnapshot(), reverse ? 'reverse order' : 'creation order').toEqual(before);
      }
    },
    SLOW,
  );

  it(
    'tcmu demo --here passes',
    async () => {
      const result = await tcmu(['demo', '--here', '--size', '64M', '--files', '4']);
      expect(result.exitCode, result.stdout + result.stderr).toBe(0);
      expect(result.stdout).toMatch(/compare sha256 checksums \.\.\. ok/);
      expect(result.stdout).toMatch(/4 of 4 files match/);
      expect(result.stdout).toMatch(/tcmu demo: PASSED/);
      expect(await configfsSnapshot()).toEqual(before);
    },
    SLOW,
  );
});
