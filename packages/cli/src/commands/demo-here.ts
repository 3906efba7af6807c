import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogLevel } from '../arguments.js';
import { CliError } from '../errors.js';
import type { CommandIo } from '../io.js';
import { createLogger, type Logger } from '../logger.js';
import { openBackend } from '../open-backend.js';
import { lastLine, type ProgramResult, runProgram } from '../run-program.js';
import { formatSize } from '../size.js';
import { processServeDependencies, type ServedDevice } from './serve.js';

const seconds = (milliseconds: number) => `${(milliseconds / 1000).toFixed(2)} s`;
const indent = (text: string) =>
  text
    .trimEnd()
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');

/** What the demo is asked to do. */
export interface DemoOptions {
  /** Never move to the lab: fail when this kernel has no TCMU. */
  readonly here: boolean;
  /** Disk size in bytes. */
  readonly size: number;
  readonly blockSize: 512 | 4096;
  /** Files written and verified. */
  readonly files: number;
  /** Bytes per file. */
  readonly fileSize: number;
  readonly logLevel: LogLevel;
  /** The arguments to pass on when the demo re-runs itself in the lab. */
  readonly forwarded: readonly string[];
}

/**
 * The demo in this kernel: a memory disk served by this process, formatted, mounted, written, checked
 * with e2fsck, remounted, read back and compared, then torn down. Every program that touches the disk
 * runs as a child process: this process's event loop must stay free to answer the kernel's commands.
 * Returns 0 only when every step passed and every checksum matched. What the steps make (the served
 * disk, the mount, the temporary folders) is recorded in {@link DemoResources} and released by
 * {@link releaseDemo} whatever happens.
 */
export async function runDemoHere(options: DemoOptions, io: CommandIo): Promise<number> {
  const logger = createLogger(options.logLevel, { command: 'demo' });
  const name = `demo-${io.pid}`;
  const totalStart = performance.now();
  const say = (text: string) => io.stdout(`${text}\n`);
  const steps = new DemoSteps(io, 10, logger);
  const made: DemoResources = {};
  try {
    say(
      `tcmu demo: a ${formatSize(options.size)} memory disk (${options.blockSize}-byte blocks) served from TypeScript by pid ${io.pid}`,
    );
    const device = await steps.run(`serving memory: as ${name} through TCMU and tcm_loop`, () =>
      serveMemoryDisk(options, name, logger, made),
    );
    const disk = device.devicePath;
    say(`    the disk is ${disk}`);
    await inspectDisk(steps, say, disk, options);
    await steps.run(`mkfs.ext4 ${disk}`, () => mustRun('mkfs.ext4', ['-F', '-q', '-E', 'nodiscard', disk]));
    const target = await makeMountPoint(made);
    await steps.run(`mount ${disk} ${target}`, () => mount(disk, target, made));
    const expected = await stageFiles(options, made);
    const totalBytes = options.files * options.fileSize;
    await steps.run(`write ${options.files} files of random data (${formatSize(totalBytes)}) and sync`, () =>
      copyAndSync(expected, made.staging!, target),
    );
    await steps.run(`unmount, e2fsck -fn ${disk} (must be clean)`, async () => {
      await unmount(target, made);
      await mustRun('e2fsck', ['-fn', disk]);
    });
    await steps.run(`mount ${disk} again`, () => mount(disk, target, made));
    const sums = await steps.run('read every file back, compare sha256 checksums', () =>
      compareChecksums(expected, target),
    );
    say(`    ${sums.size} of ${expected.size} files match (${formatSize(totalBytes)})`);
    const stats = device.stats;
    await steps.run(`unmount and tear down ${name}`, async () => {
      await unmount(target, made);
      await closeServedDisk(made);
      await assertNothingLeft(name);
    });
    printSummary(say, steps.timings, performance.now() - totalStart, stats);
    say(
      `tcmu demo: PASSED: ${options.files} files (${formatSize(totalBytes)}) written through ${disk}, fsck clean, every checksum matched, configfs clean`,
    );
    return 0;
  } finally {
    steps.dispose();
    await releaseDemo(made, logger);
  }
}

/** What the demo's steps made so far: each is released by {@link releaseDemo} when still set. */
interface DemoResources {
  opened?: Awaited<ReturnType<typeof openBackend>>;
  device?: ServedDevice;
  mountPoint?: string;
  mounted?: boolean;
  staging?: string;
}

/**
 * Runs the demo's steps, printing `[n/10] what ... ok (1.23 s)` and keeping their timings. SIGINT and
 * SIGTERM are remembered while it is in use: the current step finishes, the next one refuses to start.
 */
class DemoSteps {
  readonly timings: { step: string; milliseconds: number }[] = [];
  readonly #io: CommandIo;
  readonly #total: number;
  #number = 0;
  #interrupted: NodeJS.Signals | undefined;
  readonly #onSignal: (signal: NodeJS.Signals) => void;

  constructor(io: CommandIo, total: number, logger: Logger) {
    this.#io = io;
    this.#total = total;
    this.#onSignal = (signal) => {
      this.#interrupted = signal;
      logger.warn({ signal }, 'interrupted: finishing the current step, then cleaning up');
    };
    process.on('SIGINT', this.#onSignal);
    process.on('SIGTERM', this.#onSignal);
  }

  async run<T>(title: string, work: () => Promise<T>): Promise<T> {
    if (this.#interrupted)
      throw new CliError('TCMU_ERR_CLI_DEMO_FAILED', `interrupted by ${this.#interrupted}`);
    this.#number++;
    this.#io.stdout(`[${this.#number}/${this.#total}] ${title} ... `);
    const start = performance.now();
    try {
      const result = await work();
      const elapsed = performance.now() - start;
      this.timings.push({ step: title, milliseconds: elapsed });
      this.#io.stdout(`ok (${seconds(elapsed)})\n`);
      return result;
    } catch (error) {
      this.#io.stdout('FAILED\n');
      throw error;
    }
  }

  dispose(): void {
    process.off('SIGINT', this.#onSignal);
    process.off('SIGTERM', this.#onSignal);
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

/** Opens a memory backend and serves it as a disk through TCMU and tcm_loop. */
async function serveMemoryDisk(
  options: DemoOptions,
  name: string,
  logger: Logger,
  made: DemoResources,
): Promise<ServedDevice> {
  made.opened = await openBackend(
    { backend: { kind: 'memory' }, size: options.size, blockSize: options.blockSize, readOnly: false },
    logger,
  );
  made.device = await processServeDependencies.openDevice({
    name,
    size: options.size,
    blockSize: options.blockSize,
    backend: made.opened.backend,
    lun: 0,
    hba: undefined,
    readOnly: false,
    queueDepth: undefined,
    logger,
  });
  return made.device;
}

/** INQUIRY and READ CAPACITY through sg3-utils, printed; the capacity must be the one asked for. */
async function inspectDisk(
  steps: DemoSteps,
  say: (text: string) => void,
  disk: string,
  options: DemoOptions,
): Promise<void> {
  const inquiry = await steps.run(`sg_inq ${disk}`, () => mustRun('sg_inq', [disk]));
  say(indent(inquiry.stdout));
  const capacity = await steps.run(`sg_readcap --long ${disk}`, () =>
    mustRun('sg_readcap', ['--long', disk]),
  );
  say(indent(capacity.stdout));
  checkCapacity(capacity.stdout, options.size, options.blockSize);
}

async function makeMountPoint(made: DemoResources): Promise<string> {
  made.mountPoint = await mkdtemp(join(tmpdir(), 'tcmu-demo-mnt-'));
  return made.mountPoint;
}

async function mount(disk: string, target: string, made: DemoResources): Promise<void> {
  await mustRun('mount', [disk, target]);
  made.mounted = true;
}

async function unmount(target: string, made: DemoResources): Promise<void> {
  await mustRun('umount', [target]);
  made.mounted = false;
}

/**
 * Makes the files in a staging folder off the disk (cp copies them on): this process never blocks on
 * I/O to the disk it serves. Returns each file's sha256.
 */
async function stageFiles(options: DemoOptions, made: DemoResources): Promise<Map<string, string>> {
  const staging = await mkdtemp(join(tmpdir(), 'tcmu-demo-files-'));
  made.staging = staging;
  const expected = new Map<string, string>();
  for (let index = 0; index < options.files; index++) {
    const file = `file-${String(index).padStart(3, '0')}.bin`;
    const content = randomBytes(options.fileSize);
    expected.set(file, createHash('sha256').update(content).digest('hex'));
    await writeFile(join(staging, file), content);
  }
  return expected;
}

async function copyAndSync(expected: Map<string, string>, staging: string, target: string): Promise<void> {
  await mustRun('cp', [...[...expected.keys()].map((file) => join(staging, file)), `${target}/`]);
  await mustRun('sync', ['-f', target]);
}

/** Reads every file back with sha256sum; fails naming the files whose checksum differs. */
async function compareChecksums(expected: Map<string, string>, target: string): Promise<Map<string, string>> {
  const result = await mustRun(
    'sha256sum',
    [...expected.keys()].map((file) => join(target, file)),
  );
  const actual = new Map<string, string>();
  for (const line of result.stdout.trim().split('\n')) {
    const [sum, path] = line.split(/\s+\*?/, 2) as [string, string];
    actual.set(path.slice(target.length + 1), sum);
  }
  const mismatched = [...expected].filter(([file, sum]) => actual.get(file) !== sum).map(([file]) => file);
  if (mismatched.length > 0) {
    throw new CliError(
      'TCMU_ERR_CLI_DEMO_FAILED',
      `${mismatched.length} of ${expected.size} files differ after reading back: ${mismatched.join(', ')}`,
    );
  }
  return actual;
}

/** Closes the device (removing it from configfs), then the backend. */
async function closeServedDisk(made: DemoResources): Promise<void> {
  const served = made.device!;
  made.device = undefined;
  await served.close();
  await made.opened!.close();
  made.opened = undefined;
}

function printSummary(
  say: (text: string) => void,
  timings: readonly { step: string; milliseconds: number }[],
  total: number,
  stats: ServedDevice['stats'],
): void {
  say('');
  say('summary');
  for (const { step: title, milliseconds } of timings)
    say(`  ${seconds(milliseconds).padStart(8)}  ${title}`);
  say(`  ${seconds(total).padStart(8)}  total`);
  if (stats) {
    say(`  ${stats.completed} SCSI commands served from TypeScript, up to ${stats.maxInFlight} at once`);
  }
}

/** Releases whatever the steps left: unmounts (lazily if need be), closes device and backend, removes the folders. */
async function releaseDemo(made: DemoResources, logger: Logger): Promise<void> {
  if (made.mounted && made.mountPoint) {
    const result = await runProgram('umount', [made.mountPoint]).catch(() => undefined);
    if (result?.exitCode !== 0) await runProgram('umount', ['-l', made.mountPoint]).catch(() => undefined);
  }
  if (made.device)
    await made.device.close().catch((error) => logger.error({ err: error }, 'teardown failed'));
  if (made.opened) await made.opened.close().catch(() => {});
  if (made.mountPoint) await rm(made.mountPoint, { recursive: false, force: true }).catch(() => {});
  if (made.staging) await rm(made.staging, { recursive: true, force: true }).catch(() => {});
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
