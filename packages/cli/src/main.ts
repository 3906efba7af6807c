import { exitCodeOf, formatError } from './errors.js';
import { DEMO_HELP, LS_HELP, MAIN_HELP, RM_HELP, SERVE_HELP, VOLUME_HELP } from './help.js';
import { type CommandIo, processIo } from './io.js';
import { cliVersion } from './version.js';

/** A subcommand: gets the arguments after its name, returns the exit status. */
export type Command = (argv: readonly string[], io: CommandIo) => Promise<number>;

const HELPS: Record<string, string> = {
  serve: SERVE_HELP,
  ls: LS_HELP,
  rm: RM_HELP,
  demo: DEMO_HELP,
  volume: VOLUME_HELP,
};

/** Subcommands load lazily, so `tcmu ls` never loads the ring (koffi) and `tcmu --help` loads nothing. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./commands/serve.js')).serveCommand,
  ls: async () => (await import('./commands/ls.js')).listCommand,
  rm: async () => (await import('./commands/rm.js')).removeCommand,
  demo: async () => (await import('./commands/demo.js')).demoCommand,
  volume: async () => (await import('./commands/volume.js')).volumeCommand,
};

/**
 * Runs the `tcmu` command line (`argv` without node and the script) and returns the exit status:
 * 0 success, 1 failure, 2 usage error. Every failure is printed as ONE line on stderr; nothing throws.
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
      io.stdout(topic !== undefined && HELPS[topic] ? HELPS[topic] : MAIN_HELP);
      return 0;
    }
    if (command === '-v' || command === '--version') {
      io.stdout(`${cliVersion()}\n`);
      return 0;
    }
    const load = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (!load) {
      io.stderr(
        `tcmu: unknown command "${command}" (commands: serve, ls, rm, demo, volume; see tcmu --help) [TCMU_ERR_CLI_USAGE]\n`,
      );
      return 2;
    }
    const runCommand = await load();
    return await runCommand(rest, io);
  } catch (error) {
    io.stderr(`${formatError(error, command === undefined ? 'tcmu' : `tcmu ${command}`)}\n`);
    return exitCodeOf(error);
  }
}
