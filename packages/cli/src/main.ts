import { exitCodeOf, formatError, formatErrorJson } from './errors.js';
import { DEMO_HELP, LS_HELP, MAIN_HELP, RM_HELP, SERVE_HELP, STATS_HELP, VOLUME_HELP } from './help.js';
import { type CommandIo, processIo } from './io.js';
import { formatVersionReport, versionReport } from './version.js';

/** A subcommand: gets the arguments after its name, returns the exit status. */
export type Command = (argv: readonly string[], io: CommandIo) => Promise<number>;

const HELPS: Record<string, string> = {
  serve: SERVE_HELP,
  ls: LS_HELP,
  rm: RM_HELP,
  stats: STATS_HELP,
  demo: DEMO_HELP,
  volume: VOLUME_HELP,
};

/** Subcommands load lazily, so `tcmu ls` never loads the ring (koffi) and `tcmu --help` loads nothing. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./commands/serve.js')).serveCommand,
  ls: async () => (await import('./commands/ls.js')).listCommand,
  rm: async () => (await import('./commands/rm.js')).removeCommand,
  stats: async () => (await import('./commands/stats.js')).statsCommand,
  demo: async () => (await import('./commands/demo.js')).demoCommand,
  volume: async () => (await import('./commands/volume.js')).volumeCommand,
};

const COMMAND_LIST = Object.keys(COMMANDS).join(', ');

function unknownCommand(io: CommandIo, command: string): number {
  io.stderr(
    `tcmu: unknown command "${command}" (commands: ${COMMAND_LIST}; see tcmu --help) [TCMU_ERR_CLI_USAGE]\n`,
  );
  return 2;
}

/** True when `--json` is among a command's options (before a `--` that ends them). */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

/**
 * Runs the `tcmu` command line (`argv` without node and the script) and returns the exit status:
 * 0 success, 1 failure, 2 usage error. Every failure is printed as ONE line on stderr (a JSON object
 * when the command was given `--json`); nothing throws.
 */
export async function run(argv: readonly string[], io: CommandIo = processIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined) {
      io.stderr(MAIN_HELP);
      return 2;
    }
    if (command === '-h' || command === '--help') {
      io.stdout(MAIN_HELP);
      return 0;
    }
    if (command === 'help') {
      const topic = rest[0];
      if (topic === undefined) {
        io.stdout(MAIN_HELP);
        return 0;
      }
      if (!Object.hasOwn(HELPS, topic)) return unknownCommand(io, topic);
      io.stdout(HELPS[topic]!);
      return 0;
    }
    if (command === '-v' || command === '-V' || command === '--version') {
      const report = await versionReport();
      io.stdout(wantsJson(rest) ? `${JSON.stringify(report)}\n` : formatVersionReport(report));
      return 0;
    }
    const load = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (!load) return unknownCommand(io, command);
    const runCommand = await load();
    return await runCommand(rest, io);
  } catch (error) {
    const prefix = command === undefined ? 'tcmu' : `tcmu ${command}`;
    io.stderr(`${wantsJson(rest) ? formatErrorJson(error, prefix) : formatError(error, prefix)}\n`);
    return exitCodeOf(error);
  }
}
