import { parseCommandLine, parseInteger, validateName } from '../arguments.js';
import { COMMAND_KINDS } from '../command-kinds.js';
import { CliError } from '../errors.js';
import { STATS_HELP } from '../help.js';
import type { CommandIo } from '../io.js';
import type { StatsSnapshot } from '../metrics.js';
import { readServerState, runDirectory } from '../state.js';
import { fetchStats, formatBytes, formatRate, formatUptime } from './ls.js';

/** What `tcmu stats` waits with (injected in tests). */
export interface StatsDependencies {
  fetchStats(address: string): Promise<StatsSnapshot | undefined>;
  /** Resolves after `milliseconds`, or early (with false) when the watch should end. */
  sleep(milliseconds: number): Promise<boolean>;
}

const processStatsDependencies: StatsDependencies = {
  fetchStats: (address) => fetchStats(address),
  sleep: (milliseconds) =>
    new Promise((resolve) => {
      const stop = () => {
        clearTimeout(timer);
        process.off('SIGINT', stop);
        resolve(false);
      };
      const timer = setTimeout(() => {
        process.off('SIGINT', stop);
        resolve(true);
      }, milliseconds);
      process.once('SIGINT', stop);
    }),
};

/** The counters as a few aligned lines. */
export function formatSnapshot(snapshot: StatsSnapshot, metricsAddress: string): string {
  const lines = [
    `${snapshot.name}: up ${formatUptime(snapshot.uptimeSeconds)}, metrics http://${metricsAddress}/metrics`,
    `  rate (last ${Math.round(snapshot.rates.windowSeconds)} s): ${Math.round(snapshot.rates.commandsPerSecond)} IOPS, read ${formatRate(snapshot.rates.readBytesPerSecond)}, write ${formatRate(snapshot.rates.writeBytesPerSecond)}`,
    `  in flight ${snapshot.inFlight}, queued ${snapshot.queued}, task management ${snapshot.taskManagement}, aborted ${snapshot.aborted}, backend errors ${snapshot.backendErrors}`,
  ];
  for (const kind of COMMAND_KINDS) {
    const figures = snapshot.kinds[kind];
    lines.push(
      `  ${kind.padEnd(6)} ${String(figures.commands).padStart(10)} commands  ${formatBytes(figures.bytes).padStart(10)}  mean ${figures.meanLatencyMs.toFixed(3)} ms`,
    );
  }
  const checks = Object.entries(snapshot.checkConditions);
  lines.push(
    `  check conditions: ${checks.length === 0 ? 'none' : checks.map(([key, count]) => `${key} ${count}`).join(', ')}`,
  );
  if (snapshot.backend !== undefined) {
    const figures = Object.entries(snapshot.backend)
      .filter(([, value]) => ['number', 'string', 'boolean'].includes(typeof value))
      .map(([key, value]) => `${key} ${value}`);
    lines.push(`  backend: ${figures.join(', ') || '-'}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `tcmu stats`: see STATS_HELP. */
export async function statsCommand(
  argv: readonly string[],
  io: CommandIo,
  dependencies: StatsDependencies = processStatsDependencies,
): Promise<number> {
  const { values, positionals } = parseCommandLine('stats', argv, {
    watch: { type: 'boolean', short: 'w' },
    interval: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    io.stdout(STATS_HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new CliError(
      'TCMU_ERR_CLI_USAGE',
      positionals.length === 0
        ? 'missing device name'
        : `unexpected argument "${positionals[1]}": stats takes one name`,
      { hint: 'see tcmu stats --help' },
    );
  }
  const name = validateName(positionals[0]!);
  const seconds = values.interval === undefined ? 1 : parseInteger('--interval', values.interval, 1, 3600);
  const state = await readServerState(runDirectory(io.env), name);
  if (state === undefined) {
    throw new CliError(
      'TCMU_ERR_CLI_NO_SUCH_DEVICE',
      `no device named "${name}" is served by tcmu serve here`,
      {
        hint: 'see tcmu ls',
      },
    );
  }
  if (state.metrics === undefined) {
    throw new CliError(
      'TCMU_ERR_CLI_NO_METRICS',
      `"${name}" is served without --metrics (pid ${state.pid})`,
      {
        hint: 'serve it with --metrics 127.0.0.1:PORT',
      },
    );
  }
  for (;;) {
    const snapshot = await dependencies.fetchStats(state.metrics);
    if (snapshot === undefined) {
      throw new CliError(
        'TCMU_ERR_CLI_NO_METRICS',
        `the metrics endpoint of "${name}" (http://${state.metrics}) does not answer`,
        { hint: 'is its server still running? see tcmu ls' },
      );
    }
    io.stdout(values.json ? `${JSON.stringify(snapshot)}\n` : formatSnapshot(snapshot, state.metrics));
    if (!values.watch) return 0;
    if (!(await dependencies.sleep(seconds * 1000))) return 0;
  }
}
