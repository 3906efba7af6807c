// `tcmu serve --iscsi` against the real kernel (run inside the kernel lab): the disk is also exported
// through LIO's iSCSI target on 127.0.0.1, and real initiators (libiscsi's iscsi-ls / iscsi-inq, and
// qemu-io / qemu-img with qemu's libiscsi driver, from Debian's libiscsi-bin, qemu-utils and
// qemu-block-extra) log in, write and read back; the bytes are checked through the local disk too.
// Uses the built CLI (dist/cli.js): run `pnpm build` first.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeKernel } from '@tcmu/lab';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import {
  ALLOWED,
  cli,
  configfsSnapshot,
  imageOptions,
  MIB,
  qemuIo,
  readLocal,
  run,
  running,
  SLOW,
  STRANGER,
  serve,
} from './iscsi-test-support.js';

const SECRET = 'lab-chap-secret-0123';

describeKernel('tcmu serve --iscsi in the real kernel', () => {
  let before: string[] = [];
  let work = '';

  beforeAll(async () => {
    expect(existsSync(cli), `${cli} exists (run pnpm build before the kernel tests)`).toBe(true);
    for (const tool of ['qemu-io', 'qemu-img', 'iscsi-ls', 'iscsi-inq']) {
      expect(
        (await run('sh', ['-c', `command -v ${tool}`])).exitCode,
        `${tool} is installed (tools/lab/setup)`,
      ).toBe(0);
    }
    before = await configfsSnapshot();
    work = await mkdtemp(join(tmpdir(), 'tcmu-iscsi-kernel-'));
  });

  // A failed test's server is stopped properly, so the next test starts from the same configfs.
  afterEach(async () => {
    await Promise.all(
      [...running].map((child) => new Promise((resolve) => child.once('exit', resolve).kill('SIGTERM'))),
    );
  });

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it(
    'an allowed initiator logs in, writes and reads back (checked on the local disk too); a stranger is refused',
    async () => {
      const server = await serve([
        'memory:',
        '--size',
        '16M',
        '--name',
        'isc-rw',
        '--iscsi',
        '--iscsi-allow',
        ALLOWED,
      ]);
      const iqn = 'iqn.2003-01.org.linux-iscsi.tcmu:isc-rw';
      expect(server.ready.iscsi).toBe(`iscsi://127.0.0.1:3260/${iqn}/0`);

      const discovered = await run('iscsi-ls', ['-i', ALLOWED, 'iscsi://127.0.0.1:3260']);
      console.log(`iscsi-ls: ${discovered.stdout.trim()}`);
      expect(discovered.stdout).toContain(`Target:${iqn}`);
      const inquiry = await run('iscsi-inq', ['-i', ALLOWED, server.ready.iscsi.replace(':3260', '')]);
      console.log(`iscsi-inq: ${inquiry.stdout.trim().split('\n').slice(0, 4).join(' | ')}`);
      expect(inquiry.exitCode, inquiry.stderr).toBe(0);

      // Write a pattern over iSCSI, read it back over iSCSI, and see the same bytes on the local disk.
      const io = await qemuIo(imageOptions(iqn, ALLOWED), ['write -P 0x5a 1M 1M', 'read -P 0x5a 1M 1M']);
      console.log(`qemu-io: ${io.stdout.trim().replaceAll('\n', ' | ')}`);
      expect(io.exitCode, io.stderr).toBe(0);
      expect(io.stdout).toMatch(/wrote 1048576\/1048576 bytes at offset 1048576/);
      expect(io.stdout).toMatch(/read 1048576\/1048576 bytes at offset 1048576/);
      expect(io.stdout + io.stderr).not.toMatch(/verification failed/i);
      expect((await readLocal(server.ready.device, MIB, MIB)).equals(Buffer.alloc(MIB, 0x5a))).toBe(true);

      // The other way: random bytes written on the local disk, the whole disk read over iSCSI.
      const local = randomBytes(2 * MIB);
      const source = join(work, 'local.bin');
      await writeFile(source, local);
      const dd = await run('dd', [
        `if=${source}`,
        `of=${server.ready.device}`,
        'bs=1M',
        'seek=4',
        'oflag=direct',
        'status=none',
      ]);
      expect(dd.exitCode, dd.stderr).toBe(0);
      const copy = join(work, 'over-iscsi.raw');
      const convert = await run('qemu-img', [
        'convert',
        '--image-opts',
        imageOptions(iqn, ALLOWED),
        '-O',
        'raw',
        copy,
      ]);
      expect(convert.exitCode, convert.stderr).toBe(0);
      const whole = await readFile(copy);
      expect(whole.length).toBe(16 * MIB);
      const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
      expect(sha(whole.subarray(4 * MIB, 6 * MIB))).toBe(sha(local));
      expect(whole.subarray(MIB, 2 * MIB).equals(Buffer.alloc(MIB, 0x5a))).toBe(true);

      // An initiator that is not listed cannot log in (nor see the LUN).
      const stranger = await qemuIo(imageOptions(iqn, STRANGER), ['read 0 4k']);
      console.log(
        `stranger: exit ${stranger.exitCode}: ${(stranger.stderr + stranger.stdout).trim().split('\n')[0]}`,
      );
      expect(stranger.exitCode).not.toBe(0);
      expect(stranger.stdout).not.toMatch(/read 4096\/4096/);

      // ls shows the export.
      const listed = JSON.parse((await run(process.execPath, [cli, 'ls', '--json'])).stdout) as Array<{
        name: string;
        iscsi?: string[];
      }>;
      expect(listed.find((entry) => entry.name === 'isc-rw')?.iscsi).toEqual([server.ready.iscsi]);

      expect(await server.stop('SIGTERM')).toBe(0);
      expect(await configfsSnapshot()).toEqual(before);
    },
    SLOW,
  );

  it(
    'CHAP: the right secret logs in, a wrong one is refused; the secret never shows in output',
    async () => {
      const secretFile = join(work, 'chap-secret');
      await writeFile(secretFile, `${SECRET}\n`, { mode: 0o600 });
      const server = await serve([
        'memory:',
        '--size',
        '4M',
        '--name',
        'isc-chap',
        '--iscsi',
        '127.0.0.1:3260',
        '--iscsi-allow',
        ALLOWED,
        '--iscsi-chap-user',
        'labuser',
        '--iscsi-chap-secret-file',
        secretFile,
      ]);
      const iqn = 'iqn.2003-01.org.linux-iscsi.tcmu:isc-chap';
      const chap = { user: 'labuser', secretId: 'chap0' };
      // qemu takes a secret file byte for byte (no newline); tcmu drops one trailing newline.
      const qemuSecret = join(work, 'qemu-secret');
      await writeFile(qemuSecret, SECRET, { mode: 0o600 });
      const right = await qemuIo(
        imageOptions(iqn, ALLOWED, chap),
        ['write -P 0x33 0 64k', 'read -P 0x33 0 64k'],
        { secretFile: qemuSecret },
      );
      expect(right.exitCode, right.stderr).toBe(0);
      expect(right.stdout).toMatch(/read 65536\/65536 bytes/);
      const wrongFile = join(work, 'wrong-secret');
      await writeFile(wrongFile, 'not-the-right-secret');
      const wrong = await qemuIo(imageOptions(iqn, ALLOWED, chap), ['read 0 4k'], { secretFile: wrongFile });
      console.log(
        `wrong CHAP secret: exit ${wrong.exitCode}: ${(wrong.stderr + wrong.stdout).trim().split('\n')[0]}`,
      );
      expect(wrong.exitCode).not.toBe(0);
      expect(wrong.stdout).not.toMatch(/read 4096\/4096/);
      const none = await qemuIo(imageOptions(iqn, ALLOWED), ['read 0 4k']);
      expect(none.exitCode).not.toBe(0);
      expect(await server.stop('SIGTERM')).toBe(0);
      expect(server.stderr()).not.toContain(SECRET);
      expect(await configfsSnapshot()).toEqual(before);
    },
    SLOW,
  );

  it(
    'a read-only disk refuses writes over iSCSI and still reads; an open export needs no ACL',
    async () => {
      const server = await serve([
        'memory:',
        '--size',
        '4M',
        '--name',
        'isc-ro',
        '--read-only',
        '--iscsi',
        '--iscsi-open',
      ]);
      const iqn = 'iqn.2003-01.org.linux-iscsi.tcmu:isc-ro';
      const read = await qemuIo(imageOptions(iqn, STRANGER), ['read -P 0 0 64k'], { readOnly: true });
      expect(read.exitCode, read.stderr).toBe(0);
      const write = await qemuIo(imageOptions(iqn, STRANGER), ['write -P 0x77 0 64k']);
      console.log(
        `read-only write: exit ${write.exitCode}: ${(write.stderr + write.stdout).trim().replaceAll('\n', ' | ')}`,
      );
      expect(write.stdout).not.toMatch(/wrote 65536\/65536/);
      expect((await readLocal(server.ready.device, 0, 65_536)).equals(Buffer.alloc(65_536))).toBe(true);
      expect(await server.stop('SIGTERM')).toBe(0);
      expect(await configfsSnapshot()).toEqual(before);
    },
    SLOW,
  );

  it(
    'a SIGKILLed server leaves its export; ls shows it stale and rm --stale removes it with the disk',
    async () => {
      const server = await serve([
        'memory:',
        '--size',
        '4M',
        '--name',
        'isc-kill',
        '--iscsi',
        '--iscsi-allow',
        ALLOWED,
      ]);
      expect(await server.stop('SIGKILL')).toBe('SIGKILL');
      const listed = JSON.parse((await run(process.execPath, [cli, 'ls', '--json'])).stdout) as Array<{
        name: string;
        state: string;
        iscsi?: string[];
      }>;
      expect(listed.find((entry) => entry.name === 'isc-kill')).toMatchObject({
        state: 'stale',
        iscsi: [server.ready.iscsi],
      });
      const removed = await run(process.execPath, [cli, 'rm', '--stale']);
      expect(removed.exitCode, removed.stderr).toBe(0);
      expect(await configfsSnapshot()).toEqual(before);
    },
    SLOW,
  );
});
