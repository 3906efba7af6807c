/**
 * Errors the `tcmu` command reports to its user. Every one renders as a single line (no stack trace);
 * match them by `code`, never by class identity (two copies of the package can be loaded at once).
 */
export type CliErrorCode =
  /** A command-line argument is missing, unknown or malformed (exit status 2). */
  | 'TCMU_ERR_CLI_USAGE'
  /** A size (`--size`) is not a positive whole number of bytes with an optional K/M/G/T suffix. */
  | 'TCMU_ERR_CLI_SIZE'
  /** `--block-size` is not 512 or 4096, or the size is not a whole number of blocks. */
  | 'TCMU_ERR_CLI_BLOCK_SIZE'
  /** The backend argument is not `memory:`, `file:/path` or `s3://bucket/prefix`, or is malformed. */
  | 'TCMU_ERR_CLI_BACKEND_URL'
  /** The backend's package is not installed (for example `@tcmu/backend-s3`). */
  | 'TCMU_ERR_CLI_BACKEND_UNAVAILABLE'
  /** A `file:` image cannot be used: its folder is missing, it is not a regular file, or its size disagrees. */
  | 'TCMU_ERR_CLI_FILE'
  /** The process is not running as root (configfs and /dev/uioN need it). */
  | 'TCMU_ERR_CLI_NOT_ROOT'
  /** The running kernel has no TCMU (no configfs target folder, `modprobe target_core_user` failed). */
  | 'TCMU_ERR_CLI_NO_TCMU'
  /** A device with that name already exists in configfs. */
  | 'TCMU_ERR_CLI_NAME_IN_USE'
  /** `tcmu rm NAME`: no device of this toolkit has that name. */
  | 'TCMU_ERR_CLI_NO_SUCH_DEVICE'
  /** `tcmu rm NAME`: the device's server did not stop within the timeout. */
  | 'TCMU_ERR_CLI_DEVICE_BUSY'
  /** `tcmu volume delete`: a writer holds the volume's lease (add `--force` only when it is dead). */
  | 'TCMU_ERR_CLI_VOLUME_IN_USE'
  /** `tcmu volume delete` without `--yes`: nothing was deleted. */
  | 'TCMU_ERR_CLI_NOT_CONFIRMED'
  /** The demo found a mismatch or a failing step. */
  | 'TCMU_ERR_CLI_DEMO_FAILED'
  /** `serve --iscsi`: the iSCSI export could not be made (no iscsi_target_mod, portal in use, IQN taken). */
  | 'TCMU_ERR_CLI_ISCSI';

/** A user-facing failure of the `tcmu` command: `message` is one line, `exitCode` is what the process returns. */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly code: CliErrorCode;
  /** Process exit status: 2 for usage errors, 1 otherwise. */
  readonly exitCode: number;
  /** One extra line telling the user what to do, printed after the message when set. */
  readonly hint: string | undefined;

  constructor(code: CliErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.exitCode = code === 'TCMU_ERR_CLI_USAGE' ? 2 : 1;
    this.hint = options.hint;
  }
}

/** True when `error` looks like an Error with a string `code` (ours or any other package's). */
export function hasCode(error: unknown): error is Error & { code: string } {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'string';
}

/** Collapses whitespace so a message always fits on one line. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, '; ').trim();
}

/**
 * Renders any thrown value as the single line the command prints on stderr, e.g.
 * `tcmu serve: invalid size "12X" (TCMU_ERR_CLI_SIZE)`. Unknown values (bugs) are labelled internal errors.
 */
export function formatError(error: unknown, prefix = 'tcmu'): string {
  if (error instanceof CliError || hasCode(error)) {
    const hint = error instanceof CliError && error.hint ? ` (${oneLine(error.hint)})` : '';
    return `${prefix}: ${oneLine(error.message)}${hint} [${error.code}]`;
  }
  if (error instanceof Error) return `${prefix}: internal error: ${oneLine(error.message)}`;
  return `${prefix}: internal error: ${oneLine(String(error))}`;
}

/** The exit status for a thrown value: the CliError's own, otherwise 1. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  if (hasCode(error) && error.code === 'TCMU_ERR_CLI_USAGE') return 2;
  return 1;
}
