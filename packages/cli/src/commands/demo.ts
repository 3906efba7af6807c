import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseBlockSize, parseCommandLine, parseInteger, parseLogLevel } from '../arguments.js';
import { detectTcmu, findLabRunner, noTcmuHint, requireRoot, type TcmuAvailability } from '../environment.js';
import { CliError } from '../errors.js';
import { explainError } from '../explain-error.js';
import { DEMO_HELP } from '../help.js';
import type { CommandIo } from '../io.js';
import { parseSize } from '../size.js';
import { type DemoOptions, runDemoHere } from './demo-here.js';

export function parseDemoArguments(
  argv: readonly string[],
): { help: true } | { help: false; options: DemoOptions } {
  const { values, positionals } = parseCommandLine('demo', argv, {
    here: { type: 'boolean' },
    size: { type: 'string', short: 's' },
    'block-size': { type: 'string', short: 'b' },
    files: { type: 'string' },
    'file-size': { type: 'string' },
    'log-level': { type: 'string' },
  });
  if (values.help) return { help: true };
  if (positionals.length > 0) {
    throw new CliError(
      'TCMU_ERR_CLI_USAGE',
      `unexpected argument "${positionals[0]}": demo takes options only`,
      {
        hint: 'see tcmu demo --help',
      },
    );
  }
  const blockSize = values['block-size'] === undefined ? 512 : parseBlockSize(values['block-size']);
  const size = parseSize(values.size ?? '256M');
  if (size % blockSize !== 0) {
    throw new CliError(
      'TCMU_ERR_CLI_BLOCK_SIZE',
      `--size ${values.size} is not a whole number of ${blockSize}-byte blocks`,
    );
  }
  if (size < 16 * 1024 * 1024) {
    throw new CliError('TCMU_ERR_CLI_SIZE', `--size ${values.size} is too small for the demo (at least 16M)`);
  }
  const files = values.files === undefined ? 8 : parseInteger('--files', values.files, 1, 1000);
  const fileSize = parseSize(values['file-size'] ?? '1M');
  if (files * fileSize > size / 2) {
    throw new CliError(
      'TCMU_ERR_CLI_SIZE',
      `${files} files of ${fileSize} bytes do not fit comfortably on the disk (at most half its size)`,
    );
  }
  return {
    help: false,
    options: {
      here: values.here ?? false,
      size,
      blockSize,
      files,
      fileSize,
      logLevel: values['log-level'] === undefined ? 'warn' : parseLogLevel(values['log-level']),
      forwarded: argv.filter((argument) => argument !== '--here'),
    },
  };
}

/** Where the demo runs and how it moves to the lab (injected in tests). */
export interface DemoDependencies {
  detectTcmu(): Promise<TcmuAvailability>;
  labRunner(): Promise<string | undefined>;
  /** Runs a program with this process's stdio; resolves with its exit status. */
  runInherited(file: string, args: readonly string[]): Promise<number>;
  /** The demo itself, in this kernel. */
  runHere(options: DemoOptions, io: CommandIo): Promise<number>;
  /** The script that runs this CLI (dist/cli.js), for re-running it in the lab. */
  cliScript(): string;
}

export const processDemoDependencies: DemoDependencies = {
  detectTcmu: () => detectTcmu(),
  labRunner: () => findLabRunner(),
  runInherited: (file, args) =>
    new Promise((resolve, reject) => {
      const child = spawn(file, [...args], { stdio: 'inherit' });
      // The child (the lab) gets the terminal's SIGINT too; keep this process alive until it is done.
      const ignore = () => {};
      process.on('SIGINT', ignore);
      child.once('error', reject);
      child.once('close', (code, signal) => {
        process.off('SIGINT', ignore);
        resolve(code ?? (signal ? 128 + 2 : 1));
      });
    }),
  runHere: (options, io) => runDemoHere(options, io),
  cliScript: () => {
    const bundled = fileURLToPath(new URL('./cli.js', import.meta.url));
    return existsSync(bundled) ? bundled : (process.argv[1] ?? bundled);
  },
};

/** `tcmu demo`: see DEMO_HELP. */
export async function demoCommand(
  argv: readonly string[],
  io: CommandIo,
  dependencies: DemoDependencies = processDemoDependencies,
): Promise<number> {
  const parsed = parseDemoArguments(argv);
  if (parsed.help) {
    io.stdout(DEMO_HELP);
    return 0;
  }
  const options = parsed.options;
  if (options.here) requireRoot('tcmu demo --here');
  const availability = await dependencies.detectTcmu();
  if (availability.available) {
    try {
      return await dependencies.runHere(options, io);
    } catch (error) {
      throw explainError(error, { noTcmuHint: noTcmuHint(await dependencies.labRunner()) });
    }
  }
  const lab = await dependencies.labRunner();
  if (options.here || lab === undefined) {
    throw new CliError('TCMU_ERR_CLI_NO_TCMU', `this kernel has no TCMU (${availability.reason})`, {
      hint: noTcmuHint(lab),
    });
  }
  io.stdout(
    `tcmu demo: this kernel has no TCMU (${availability.reason});\n` +
      `tcmu demo: running it in the kernel lab instead: a Debian kernel under QEMU (${lab})\n`,
  );
  const script = dependencies.cliScript();
  return dependencies.runInherited(lab, [
    '--timeout',
    '900',
    '--',
    process.execPath,
    script,
    'demo',
    '--here',
    ...options.forwarded,
  ]);
}
