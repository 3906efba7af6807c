// libiscsi's conformance suite (iscsi-test-cu, Debian libiscsi-bin) against disks served by `tcmu serve`
// (run inside the kernel lab): the backstore the CLI creates is also exported through LIO's iSCSI
// fabric on 127.0.0.1 (configfs written by hand here), and the whole SCSI family runs against it,
// destructive tests included, for memory, file and S3 disks. Every test must pass; configfs must end
// exactly as it began. Uses the built CLI (dist/cli.js): run `pnpm build` first.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, rmdir, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeKernel } from '@tcmu/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  cli,
  configfsSnapshot,
  must as mustSucceed,
  serve,
  stopAllServers,
  TARGET,
} from './kernel-test-support.js';
import { runProgram } from './run-program.js';

const rgwScript = fileURLToPath(new URL('../../../tools/s3/rgw', import.meta.url));
const ISCSI = `${TARGET}/iscsi`;
const PORTAL = '127.0.0.1:3260';
/** Per-test limit: the lab emulates the CPU (TCG), and the SCSI family sends thousands of commands. */
const SLOW = 3_600_000;
/**
 * The family takes about 16 minutes per disk under the lab's emulation, more than the whole kernel
 * suite's usual budget: it runs when TCMU_CONFORMANCE names the disks (`1` or `all` = memory, file
 * and s3; or a list such as `memory,file`). `TCMU_CONFORMANCE=1 bash tools/test.sh` passes it on.
 */
const selection = (process.env.TCMU_CONFORMANCE ?? '').trim();
const disks = new Set(
  selection === '1' || selection === 'all' ? ['memory', 'file', 's3'] : selection.split(/[\s,]+/),
);
const skipReason = (disk: string) =>
  disks.has(disk)
    ? undefined
    : `the SCSI family takes ~16 min per disk under emulation: set TCMU_CONFORMANCE=1 (or =${disk}) to run it`;
/** TCMU_LIBISCSI_TESTS: which tests (iscsi-test-cu --test, comma-separated), default the whole family. */
const tests = process.env.TCMU_LIBISCSI_TESTS?.trim() || 'SCSI';
const title = (disk: string, text: string) => {
  const reason = skipReason(disk);
  return reason ? `${text} [skipped: ${reason}]` : text;
};

/** A program that must succeed, with this suite's longer limit (600 s). */
const must = (file: string, args: readonly string[], env?: NodeJS.ProcessEnv) =>
  mustSucceed(file, args, { env, timeoutMilliseconds: 600_000 });

/** The configfs folder of the user backstore named `name` (core/user_N/name). */
async function findBackstore(name: string): Promise<string> {
  for (const hba of await readdir(`${TARGET}/core`)) {
    if (!/^user_\d+$/.test(hba)) continue;
    const path = `${TARGET}/core/${hba}/${name}`;
    if (existsSync(path)) return path;
  }
  throw new Error(`no user backstore named ${name} under ${TARGET}/core`);
}

/**
 * Exports `backstore` as LUN 0 of a new iSCSI target `iqn` on 127.0.0.1:3260 (any initiator, no
 * authentication, writable); returns the teardown, which removes exactly what was made.
 */
async function exportIscsi(backstore: string, iqn: string): Promise<() => Promise<void>> {
  const made: Array<() => Promise<void>> = [];
  const undo = async () => {
    for (const step of made.splice(0).reverse()) await step();
  };
  try {
    if (!existsSync(ISCSI)) {
      await mkdir(ISCSI);
      made.push(() => rmdir(ISCSI));
    }
    const target = `${ISCSI}/${iqn}`;
    await mkdir(target);
    made.push(() => rmdir(target));
    const tpg = `${target}/tpgt_1`;
    await mkdir(tpg);
    made.push(() => rmdir(tpg));
    await mkdir(`${tpg}/lun/lun_0`);
    made.push(() => rmdir(`${tpg}/lun/lun_0`));
    const link = `${tpg}/lun/lun_0/${backstore.split('/').pop()}`;
    await symlink(backstore, link);
    made.push(() => unlink(link));
    await mkdir(`${tpg}/np/${PORTAL}`);
    made.push(() => rmdir(`${tpg}/np/${PORTAL}`));
    await writeFile(`${tpg}/attrib/authentication`, '0');
    await writeFile(`${tpg}/attrib/generate_node_acls`, '1');
    await writeFile(`${tpg}/attrib/demo_mode_write_protect`, '0');
    await writeFile(`${tpg}/enable`, '1');
    made.push(() => writeFile(`${tpg}/enable`, '0'));
  } catch (error) {
    await undo();
    throw error;
  }
  return undo;
}

interface CunitSummary {
  readonly run: number;
  readonly passed: number;
  readonly failed: number;
  readonly failures: readonly string[];
}

/** The "tests" row of CUnit's Run Summary and the names of the failed tests (normal mode output). */
function parseCunitOutput(output: string): CunitSummary | undefined {
  const row = /^\s*tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(output);
  if (!row) return undefined;
  const failures = new Set<string>();
  let suite = '';
  for (const line of output.split('\n')) {
    const s = /^Suite:\s*(\S+)/.exec(line.trim());
    if (s) suite = s[1]!;
    const t = /^Test:\s*(\S+).*FAILED/.exec(line.trim());
    if (t) failures.add(`${suite}.${t[1]}`);
    // Normal mode names them at the end: "Suite Reserve6, Test Logout had failures:".
    const named = /Suite (\S+), Test (\S+) had failures/.exec(line);
    if (named) failures.add(`${named[1]}.${named[2]}`);
  }
  return { run: Number(row[2]), passed: Number(row[3]), failed: Number(row[4]), failures: [...failures] };
}

describeKernel('libiscsi iscsi-test-cu SCSI family against tcmu disks exported over LIO iSCSI', () => {
  let before: string[] = [];
  let work = '';
  let s3Env: NodeJS.ProcessEnv | undefined;
  const rgwEnv = { ...process.env, TCMU_RGW_DIR: '/tmp/tcmu-rgw-lab' };

  beforeAll(async () => {
    expect(existsSync(cli), `${cli} exists (run pnpm build before the kernel tests)`).toBe(true);
    expect(
      existsSync('/usr/bin/iscsi-test-cu'),
      'iscsi-test-cu is installed (Debian libiscsi-bin; tools/lab/setup installs it)',
    ).toBe(true);
    await must('modprobe', ['iscsi_target_mod']);
    before = await configfsSnapshot();
    work = await mkdtemp(join(tmpdir(), 'tcmu-libiscsi-'));
  }, 120_000);

  afterAll(async () => {
    await stopAllServers();
    if (s3Env) await must(rgwScript, ['stop'], rgwEnv).catch(() => {});
    if (work) await rm(work, { recursive: true, force: true });
  }, 180_000);

  async function runFamily(label: string, location: string, env: NodeJS.ProcessEnv): Promise<void> {
    const name = `iscsi-${label}`;
    const server = await serve([location, '--size', '64M', '--name', name], env);
    const iqn = `iqn.2003-01.org.linux-iscsi.tcmu:conformance-${label}`;
    let result: Awaited<ReturnType<typeof runProgram>> | undefined;
    const unexport = await exportIscsi(await findBackstore(name), iqn);
    try {
      result = await runProgram(
        'iscsi-test-cu',
        ['--dataloss', '--normal', `--test=${tests}`, `iscsi://${PORTAL}/${iqn}/0`],
        { timeoutMilliseconds: SLOW - 120_000 },
      );
    } finally {
      await unexport();
      expect(await server.stop('SIGTERM'), server.stderr()).toBe(0);
    }
    const summary = parseCunitOutput(result.stdout);
    console.log(
      `libiscsi SCSI family, ${label} disk: ${summary ? `${summary.passed}/${summary.run} passed, ${summary.failed} failed${summary.failures.length ? ` (${summary.failures.join(', ')})` : ''}` : 'no summary'} in ${(result.milliseconds / 1000).toFixed(0)} s`,
    );
    if (!summary || summary.failed > 0) console.log(result.stdout.slice(-60_000), result.stderr);
    expect(
      summary,
      `iscsi-test-cu printed a CUnit summary (exit ${result.exitCode}): ${result.stderr}`,
    ).toBeDefined();
    expect(summary!.failures).toEqual([]);
    expect(summary!.failed).toBe(0);
    if (tests === 'SCSI') expect(summary!.run).toBeGreaterThan(200);
    else expect(summary!.run).toBeGreaterThan(0);
    expect(await configfsSnapshot()).toEqual(before);
  }

  it.skipIf(skipReason('memory'))(
    title('memory', 'memory disk: every test of the SCSI family passes'),
    () => runFamily('memory', 'memory:', process.env),
    SLOW,
  );

  it.skipIf(skipReason('file'))(
    title('file', 'file disk: every test of the SCSI family passes'),
    () => runFamily('file', `file:${join(work, 'disk.img')}`, process.env),
    SLOW,
  );

  it.skipIf(skipReason('s3'))(
    title('s3', 'S3 disk (RGW in the guest): every test of the SCSI family passes'),
    async () => {
      await must(rgwScript, ['start'], rgwEnv);
      s3Env = { ...process.env };
      for (const line of (await must(rgwScript, ['env'], rgwEnv)).split('\n')) {
        const match = /^export (\w+)=(.*)$/.exec(line.trim());
        if (match) s3Env[match[1]!] = match[2]!;
      }
      const prefix = `conformance/${randomBytes(3).toString('hex')}/disk`;
      await runFamily(
        's3',
        `s3://${s3Env.TCMU_S3_BUCKET}/${prefix}?endpoint=${s3Env.TCMU_S3_ENDPOINT}`,
        s3Env,
      );
    },
    SLOW,
  );
});
