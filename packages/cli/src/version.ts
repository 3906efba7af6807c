import { createRequire } from 'node:module';
import { version as kernelVersion, machine, release } from 'node:os';

// Set by tsup at build time (tsup.config.ts `define`): the version and commit the binary was built from.
declare const __TCMU_CLI_VERSION__: string | undefined;
declare const __TCMU_CLI_COMMIT__: string | undefined;

/** This package's version: fixed at build time from package.json (from package.json at run time in tests). */
export function cliVersion(): string {
  if (typeof __TCMU_CLI_VERSION__ === 'string') return __TCMU_CLI_VERSION__;
  const require = createRequire(import.meta.url);
  return (require('../package.json') as { version: string }).version;
}

/** The git commit the binary was built from (short hash), when it was built in a checkout. */
export function cliCommit(): string | undefined {
  return typeof __TCMU_CLI_COMMIT__ === 'string' && __TCMU_CLI_COMMIT__ !== ''
    ? __TCMU_CLI_COMMIT__
    : undefined;
}

/** What `tcmu --version` reports. */
export interface VersionReport {
  readonly tcmu: string;
  readonly commit: string | undefined;
  readonly node: string;
  /** koffi's version, or undefined when it cannot be loaded (then serving cannot work either). */
  readonly koffi: string | undefined;
  /** The running kernel: release, e.g. `6.1.0-28-amd64`. */
  readonly kernel: string;
  readonly kernelBuild: string;
  readonly machine: string;
}

export async function versionReport(): Promise<VersionReport> {
  let koffi: string | undefined;
  try {
    koffi = ((await import('koffi')) as { default: { version: string } }).default.version;
  } catch {
    koffi = undefined;
  }
  return {
    tcmu: cliVersion(),
    commit: cliCommit(),
    node: process.versions.node,
    koffi,
    kernel: release(),
    kernelBuild: kernelVersion(),
    machine: machine(),
  };
}

/** `tcmu 1.2.3 (commit abc1234)` then one line each for Node, koffi and the kernel. */
export function formatVersionReport(report: VersionReport): string {
  return [
    `tcmu ${report.tcmu}${report.commit ? ` (commit ${report.commit})` : ''}`,
    `node ${report.node}`,
    `koffi ${report.koffi ?? 'not loadable'}`,
    `kernel ${report.kernel} ${report.machine}`,
    '',
  ].join('\n');
}
