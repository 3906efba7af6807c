import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliError } from '../errors.js';
import type { CommandIo } from '../io.js';
import { createLogger } from '../logger.js';
import { openBackend } from '../open-backend.js';
import { lastLine, type ProgramResult, runProgram } from '../run-program.js';
import { formatSize } from '../size.js';
import type { DemoOptions } from './demo.js';
import { processServeDependencies, type ServedDevice } from './serve.js';

const seconds = (milliseconds: number) => `${(milliseconds / 1000).toFixed(2)} s`;
const indent = (text: string) =>
  text
    .trimEnd()
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');

/**
 * The demo in this kernel: a memory disk served by this process, formatted, mounted, written, checked
 * with e2fsck, remounted, read back and compared, then torn down. Every program that touches the disk
 * runs as a child process: this process's event loop must stay free to answer the kernel's commands.
 * Returns 0 only when every step passed and every checksum matched.
 */
export async function runDemoHere(options: DemoOptions, io: CommandIo): Promise<number> {
  const logger = createLogger(options.logLevel, { command: 'demo' });
  const name = `demo-${io.pid}`;
  const timings: { step: string; milliseconds: number }[] = [];
  const totalStart = performance.now();
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    logger.warn({ signal }, 'interrupted: finishing the current step, then cleaning up');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const say = (text: string) => io.stdout(`${text}\n`);
  let stepNumber = 0;
  const totalSteps = 10;
  /** Runs one step, printing `[n/10] what ... ok (1.23 s)`. */
  async function step<T>(title: string, work: () => Promise<T>): Promise<T> {
    if (interrupted) throw new CliError('TCMU_ERR_CLI_DEMO_FAILED', `interrupted by ${interrupted}`);
    stepNumber++;
    io.stdout(`[${stepNumber}/${totalSteps}] ${title} ... `);
    const start = performance.now();
    try {
      const result = await work();
      const elapsed = performance.now() - start;
      timings.push({ step: title, milliseconds: elapsed });
      say(`ok (${seconds(elapsed)})`);
      return result;
    } catch (error) {
      say('FAILED');
      throw error;
    }
  }
  /** Runs a program that must succeed; its failure becomes a one-line demo error. */
  async function mustRun(file: string, args: readonly string[]): Promise<ProgramResult> {
    let result: ProgramResult;
    try {
      result = await runProgram(file, args, { timeoutMilliseconds: 300_000 });
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new CliError(
        'TCMU_ERR_CLI_DEMO_FAILED',
        code === 'ENOENT'
          ? `${file} is not installed (Debian: ${packageOf(file)})`
          : `cannot run ${file}: ${error}`,
      );
    }
    if (result.exitCode !== 0) {
      throw new CliError(
        'TCMU_ERR_CLI_DEMO_FAILED',
        `${file} ${args.join(' ')} failed (${result.signal ?? `exit ${result.exitCode}`}): ${lastLine(result.stderr) || lastLine(result.stdout)}`,
      );
    }
    return result;
  }

  let opened: Awaited<ReturnType<typeof openBackend>> | undefined;
  let device: ServedDevice | undefined;
  let mountPoint: string | undefined;
  let staging: string | undefined;
  let mounted = false;
  try {
    say(
      `tcmu demo: a ${formatSize(options.size)} memory disk (${options.blockSize}-byte blocks) served from TypeScript by pid ${io.pid}`,
    );
    device = await step(`serving memory: as ${name} through TCMU and tcm_loop`, async () => {
      opened = await openBackend(
        { backend: { kind: 'memory' }, size: options.size, blockSize: options.blockSize, readOnly: false },
        logger,
      );
      return processServeDependencies.openDevice({
        name,
        size: options.size,
        blockSize: options.blockSize,
        backend: opened.backend,
        lun: 0,
        hba: undefined,
        readOnly: false,
        queueDepth: undefined,
        logger,
      });
    });
    const disk = device.devicePath;
    say(`    the disk is ${disk}`);

    const inquiry = await step(`sg_inq ${disk}`, () => mustRun('sg_inq', [disk]));
    say(indent(inquiry.stdout));
    const capacity = await step(`sg_readcap --long ${disk}`, () => mustRun('sg_readcap', ['--long', disk]));
    say(indent(capacity.stdout));
    checkCapacity(capacity.stdout, options.size, options.blockSize);

    await step(`mkfs.ext4 ${disk}`, () => mustRun('mkfs.ext4', ['-F', '-q', '-E', 'nodiscard', disk]));
    mountPoint = await mkdtemp(join(tmpdir(), 'tcmu-demo-mnt-'));
    const target = mountPoint;
    await step(`mount ${disk} ${target}`, () => mustRun('mount', [disk, target]));
    mounted = true;

    // The files are made in a staging folder off the disk, then copied by cp: this process never
    // blocks on I/O to the disk it serves.
    staging = await mkdtemp(join(tmpdir(), 'tcmu-demo-files-'));
    const expected = new Map<string, string>();
    for (let index = 0; index < options.files; index++) {
      const file = `file-${String(index).padStart(3, '0')}.bin`;
      const content = randomBytes(options.fileSize);
      expected.set(file, createHash('sha256').update(content).digest('hex'));
      await writeFile(join(staging, file), content);
    }
    const totalBytes = options.files * options.fileSize;
    const stagingFolder = staging;
    await step(
      `write ${options.files} files of random data (${formatSize(totalBytes)}) and sync`,
      async () => {
        await mustRun('cp', [...[...expected.keys()].map((file) => join(stagingFolder, file)), `${target}/`]);
        await mustRun('sync', ['-f', target]);
      },
    );
    await step(`unmount, e2fsck -fn ${disk} (must be clean)`, async () => {
      await mustRun('umount', [target]);
      mounted = false;
      await mustRun('e2fsck', ['-fn', disk]);
    });
    await step(`mount ${disk} again`, async () => {
      await mustRun('mount', [disk, target]);
      mounted = true;
    });
    const sums = await step('read every file back, compare sha256 checksums', async () => {
      const result = await mustRun(
        'sha256sum',
        [...expected.keys()].map((file) => join(target, file)),
      );
      const actual = new Map<string, string>();
      for (const line of result.stdout.trim().split('\n')) {
        const [sum, path] = line.split(/\s+\*?/, 2) as [string, string];
        actual.set(path.slice(target.length + 1), sum);
      }
      const mismatched = [...expected]
        .filter(([file, sum]) => actual.get(file) !== sum)
        .map(([file]) => file);
      if (mismatched.length > 0) {
        throw new CliError(
          'TCMU_ERR_CLI_DEMO_FAILED',
          `${mismatched.length} of ${expected.size} files differ after reading back: ${mismatched.join(', ')}`,
        );
      }
      return actual;
    });
    say(`    ${sums.size} of ${expected.size} files match (${formatSize(totalBytes)})`);
    const stats = device.stats;
    await step(`unmount and tear down ${name}`, async () => {
      await mustRun('umount', [target]);
      mounted = false;
      const served = device!;
      device = undefined;
      await served.close();
      await opened!.close();
      opened = undefined;
      await assertNothingLeft(name);
    });

    const total = performance.now() - totalStart;
    say('');
    say('summary');
    for (const { step: title, milliseconds } of timings)
      say(`  ${seconds(milliseconds).padStart(8)}  ${title}`);
    say(`  ${seconds(total).padStart(8)}  total`);
    if (stats) {
      say(`  ${stats.completed} SCSI commands served from TypeScript, up to ${stats.maxInFlight} at once`);
    }
    say(
      `tcmu demo: PASSED: ${options.files} files (${formatSize(totalBytes)}) written through ${disk}, fsck clean, every checksum matched, configfs clean`,
    );
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (mounted && mountPoint) {
      const result = await runProgram('umount', [mountPoint]).catch(() => undefined);
      if (result?.exitCode !== 0) await runProgram('umount', ['-l', mountPoint]).catch(() => undefined);
    }
    if (device) await device.close().catch((error) => logger.error({ err: error }, 'teardown failed'));
    if (opened) await opened.close().catch(() => {});
    if (mountPoint) await rm(mountPoint, { recursive: false, force: true }).catch(() => {});
    if (staging) await rm(staging, { recursive: true, force: true }).catch(() => {});
  }
}

/** The Debian package that provides a program the demo runs. */
function packageOf(program: string): string {
  if (program.startsWith('sg_')) return 'apt-get install sg3-utils';
  if (program.startsWith('mkfs') || program.startsWith('e2fsck')) return 'apt-get install e2fsprogs';
  return 'apt-get install coreutils mount';
}

/** Checks sg_readcap --long's numbers against the disk the demo asked for. */
export function checkCapacity(output: string, size: number, blockSize: number): void {
  const lastBlock = /Last (?:LBA|logical block address)=(\d+)/.exec(output)?.[1];
  const length = /Logical block length=(\d+)/.exec(output)?.[1];
  if (lastBlock === undefined || length === undefined) {
    throw new CliError('TCMU_ERR_CLI_DEMO_FAILED', 'sg_readcap printed no last LBA or block length');
  }
  if (Number(length) !== blockSize || (Number(lastBlock) + 1) * blockSize !== size) {
    throw new CliError(
      'TCMU_ERR_CLI_DEMO_FAILED',
      `READ CAPACITY reports ${Number(lastBlock) + 1} blocks of ${length} bytes; expected ${size / blockSize} of ${blockSize}`,
    );
  }
}

/** Fails when configfs still lists a device named `name` after teardown. */
async function assertNothingLeft(name: string): Promise<void> {
  const configfs = await import('@tcmu/configfs');
  const left = (await configfs.listDevices({ all: true })).filter((record) => record.name === name);
  if (left.length > 0) {
    throw new CliError(
      'TCMU_ERR_CLI_DEMO_FAILED',
      `configfs still holds ${left.map((r) => r.configfsPath).join(', ')}`,
    );
  }
}
