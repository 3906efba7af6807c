import { CliError, hasCode } from './errors.js';

/** Codes of other packages that mean "this kernel cannot do TCMU" (configfs preflight and friends). */
const NO_TCMU_CODES = new Set([
  'TCMU_ERR_CONFIGFS_NOT_MOUNTED',
  'TCMU_ERR_MODULE_MISSING',
  'TCMU_ERR_KERNEL_FEATURE_MISSING',
]);

/** A short reason from a configfs preflight error: the missing modules, else its first sentence. */
function noTcmuReason(error: Error & { code: string }): string {
  const modules = (error as { modules?: unknown }).modules;
  if (Array.isArray(modules) && modules.length > 0) {
    const missing = modules.join(', ');
    const why = /Module \S+ not found in directory \S+/.exec(error.message)?.[0];
    return `modules ${missing} missing${why ? ` (modprobe: ${why})` : ''}`;
  }
  return error.message.split(/[.:] /)[0] ?? error.message;
}

/** The innermost error with a `code` in the `cause` chain (the one that says what really went wrong). */
export function rootCause(error: unknown): unknown {
  let current = error;
  for (let depth = 0; depth < 8; depth++) {
    const cause = current instanceof Error ? current.cause : undefined;
    if (!hasCode(cause)) break;
    current = cause;
  }
  return current;
}

/**
 * Turns an error from the library packages into the error the user sees: known conditions (not root,
 * no TCMU, name in use) become CliErrors with advice; other coded errors keep their code and message
 * (from the innermost cause, which names the real problem); anything else passes through unchanged.
 */
export function explainError(error: unknown, context: { name?: string; noTcmuHint: string }): unknown {
  if (error instanceof CliError) return error;
  const root = rootCause(error);
  if (!hasCode(root)) return error;
  if (root.code === 'TCMU_ERR_NOT_ROOT') {
    return new CliError('TCMU_ERR_CLI_NOT_ROOT', root.message, {
      hint: 'run it as root (sudo)',
      cause: error,
    });
  }
  if (NO_TCMU_CODES.has(root.code)) {
    return new CliError('TCMU_ERR_CLI_NO_TCMU', `this kernel has no TCMU: ${noTcmuReason(root)}`, {
      hint: context.noTcmuHint,
      cause: error,
    });
  }
  if (root.code === 'TCMU_ERR_DEVICE_IN_USE') {
    // serve takes over the device of a server that died, never one whose server still runs.
    const what = context.name === undefined ? 'the device name' : `the name "${context.name}"`;
    return new CliError('TCMU_ERR_CLI_NAME_IN_USE', `${what} is already in use: ${root.message}`, {
      hint: 'stop that server first (tcmu rm NAME), or choose another --name',
      cause: error,
    });
  }
  if (root.code === 'TCMU_ERR_ALREADY_EXISTS') {
    const what = context.name === undefined ? 'the device name' : `the name "${context.name}"`;
    return new CliError(
      'TCMU_ERR_CLI_NAME_IN_USE',
      `${what} is already in use in configfs (${root.message})`,
      {
        hint: 'choose another --name, or remove the old device with tcmu rm',
        cause: error,
      },
    );
  }
  return root;
}
