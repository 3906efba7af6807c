import { readFile, stat } from 'node:fs/promises';
import type { IscsiExport, SystemRoots } from '@tcmu/configfs';
import { CliError, hasCode } from './errors.js';
import type { Logger } from './logger.js';

/** The portal `--iscsi` uses without an address: this host only (other hosts need an explicit address). */
export const DEFAULT_ISCSI_ADDRESS = '127.0.0.1:3260';
/** The environment variable `--iscsi-chap-user` reads the CHAP secret from (when no file is given). */
export const ISCSI_SECRET_VARIABLE = 'TCMU_ISCSI_CHAP_SECRET';

type Environment = Readonly<Record<string, string | undefined>>;

/** What the `--iscsi…` options of `tcmu serve` ask for, validated. The secret itself is read at start. */
export interface IscsiRequest {
  readonly portal: string;
  /** Target IQN; undefined: derived from the device name by @tcmu/configfs. */
  readonly iqn: string | undefined;
  readonly allow: readonly string[];
  readonly open: boolean;
  readonly chapUser: string | undefined;
  /** Where the CHAP secret comes from: a file, or the environment variable. */
  readonly chapSecretFile: string | undefined;
}

const usage = (message: string) =>
  new CliError('TCMU_ERR_CLI_USAGE', message, { hint: 'see tcmu serve --help' });

const VALUE_OPTIONS = [
  '--iscsi-iqn',
  '--iscsi-allow',
  '--iscsi-chap-user',
  '--iscsi-chap-secret-file',
] as const;
type ValueOption = (typeof VALUE_OPTIONS)[number];

/** True when `text` looks like `ADDRESS:PORT` (what may follow a bare `--iscsi`). */
function looksLikePortal(text: string | undefined): text is string {
  return text !== undefined && /^(\[[0-9A-Fa-f:.]+\]|[0-9.]+):\d+$/.test(text);
}

/**
 * Takes the `--iscsi…` options out of `tcmu serve`'s arguments: `--iscsi [ADDRESS:PORT]` (the address
 * is optional, so node's parser cannot take it), `--iscsi-iqn`, `--iscsi-allow` (repeatable),
 * `--iscsi-open`, `--iscsi-chap-user`, `--iscsi-chap-secret-file`. Returns the other arguments
 * untouched and the request (undefined without `--iscsi`). Checks the combinations; the names and the
 * address are checked by {@link checkIscsiRequest}. A secret on the command line is refused.
 */
export function extractIscsiArguments(argv: readonly string[]): {
  rest: string[];
  request: IscsiRequest | undefined;
} {
  const rest: string[] = [];
  let enabled = false;
  let portal: string | undefined;
  let open = false;
  const allow: string[] = [];
  const values = new Map<ValueOption, string>();
  let index = 0;
  while (index < argv.length) {
    const argument = argv[index]!;
    index += 1;
    if (argument === '--') {
      rest.push(argument, ...argv.slice(index));
      break;
    }
    const equals = argument.indexOf('=');
    const option = equals > 0 ? argument.slice(0, equals) : argument;
    const inline = equals > 0 ? argument.slice(equals + 1) : undefined;
    if (option === '--iscsi') {
      if (enabled) throw usage('--iscsi given twice (one portal per disk)');
      enabled = true;
      if (inline !== undefined) portal = inline;
      else if (looksLikePortal(argv[index])) {
        portal = argv[index];
        index += 1;
      }
    } else if (option === '--iscsi-open') {
      if (inline !== undefined) throw usage('--iscsi-open takes no value');
      open = true;
    } else if (option.startsWith('--iscsi-chap-secret') && option !== '--iscsi-chap-secret-file') {
      throw usage(
        `${option} is not accepted: a secret on the command line is visible to every user (ps); use --iscsi-chap-secret-file PATH or ${ISCSI_SECRET_VARIABLE}`,
      );
    } else if ((VALUE_OPTIONS as readonly string[]).includes(option)) {
      let value = inline;
      if (value === undefined) {
        value = argv[index];
        index += 1;
        if (value === undefined || value.startsWith('--')) throw usage(`${option} needs a value`);
      }
      if (value === '') throw usage(`${option} needs a value`);
      if (option === '--iscsi-allow') allow.push(value);
      else if (values.has(option as ValueOption)) throw usage(`${option} given twice`);
      else values.set(option as ValueOption, value);
    } else if (option.startsWith('--iscsi')) {
      throw usage(`unknown option "${option}"`);
    } else {
      rest.push(argument);
    }
  }
  const any = open || allow.length > 0 || values.size > 0;
  if (!enabled) {
    if (any) throw usage('the --iscsi-… options need --iscsi [ADDRESS:PORT]');
    return { rest, request: undefined };
  }
  if (open && allow.length > 0) throw usage('--iscsi-open and --iscsi-allow exclude each other');
  if (!open && allow.length === 0) {
    throw usage(
      '--iscsi needs --iscsi-allow IQN (the initiators that may log in, repeatable) or --iscsi-open (any initiator)',
    );
  }
  const chapUser = values.get('--iscsi-chap-user');
  const chapSecretFile = values.get('--iscsi-chap-secret-file');
  if (chapSecretFile !== undefined && chapUser === undefined) {
    throw usage('--iscsi-chap-secret-file needs --iscsi-chap-user NAME');
  }
  return {
    rest,
    request: {
      portal: portal ?? DEFAULT_ISCSI_ADDRESS,
      iqn: values.get('--iscsi-iqn'),
      allow,
      open,
      chapUser,
      chapSecretFile,
    },
  };
}

/**
 * Checks the IQNs, the address and the CHAP user with @tcmu/configfs's validators, and that a secret
 * source exists, before anything is created: every problem is a usage error (exit 2).
 */
export async function checkIscsiRequest(
  request: IscsiRequest,
  environment: Environment,
  deviceName: string,
): Promise<void> {
  const configfs = await import('@tcmu/configfs');
  try {
    configfs.validateIscsiPortal(request.portal);
    const iqn =
      request.iqn === undefined
        ? configfs.deriveIscsiName(deviceName)
        : configfs.validateIscsiName(request.iqn, '--iscsi-iqn');
    for (const initiator of request.allow) {
      if (configfs.validateIscsiName(initiator, '--iscsi-allow') === iqn) {
        throw usage(`--iscsi-allow ${initiator} is the target's own IQN`);
      }
    }
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw usage(error instanceof Error ? error.message : String(error));
  }
  if (
    request.chapUser !== undefined &&
    request.chapSecretFile === undefined &&
    !environment[ISCSI_SECRET_VARIABLE]
  ) {
    throw usage(
      `--iscsi-chap-user needs the secret: --iscsi-chap-secret-file PATH or ${ISCSI_SECRET_VARIABLE}`,
    );
  }
}

/** Reads the CHAP secret (file first, else the environment), trimming one trailing newline. Never logged. */
async function readSecret(request: IscsiRequest, environment: Environment, logger: Logger): Promise<string> {
  if (request.chapSecretFile === undefined) return environment[ISCSI_SECRET_VARIABLE] ?? '';
  const path = request.chapSecretFile;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
    if (((await stat(path)).mode & 0o077) !== 0) {
      logger.warn({ path }, 'the CHAP secret file is readable by other users: chmod 600 it');
    }
  } catch (error) {
    throw new CliError(
      'TCMU_ERR_CLI_ISCSI',
      `cannot read the CHAP secret file ${path}: ${hasCode(error) ? error.code : String(error)}`,
      { cause: error },
    );
  }
  return text.replace(/\r?\n$/, '');
}

/** The disk an export serves: `core/user_<hba>/<name>`. */
export interface IscsiBackstore {
  readonly name: string;
  readonly hba: number;
  readonly readOnly: boolean;
  /** Other configfs/sysfs trees (tests); default the real ones. */
  readonly roots?: SystemRoots;
}

/** What `serve` reports about a started export. */
export interface StartedIscsiExport {
  readonly iqn: string;
  readonly portal: string;
  /** `iscsi://<portal>/<iqn>/0`: what libiscsi tools and qemu take. */
  readonly url: string;
  /** Removes the target (before the disk is removed). Idempotent. */
  remove(): Promise<void>;
}

/**
 * Exports the served disk through LIO's iSCSI fabric (call after the disk is served: initiators
 * send commands as soon as they log in). Failures become TCMU_ERR_CLI_ISCSI errors; nothing of the
 * export is left behind.
 */
export async function startIscsiExport(
  request: IscsiRequest,
  backstore: IscsiBackstore,
  environment: Environment,
  logger: Logger,
): Promise<StartedIscsiExport> {
  const configfs = await import('@tcmu/configfs');
  const chap =
    request.chapUser === undefined
      ? undefined
      : { userid: request.chapUser, password: await readSecret(request, environment, logger) };
  let exported: IscsiExport;
  try {
    exported = await configfs.exportIscsi({
      ...backstore.roots,
      name: backstore.name,
      hba: backstore.hba,
      ...(request.iqn === undefined ? {} : { iqn: request.iqn }),
      portals: [request.portal],
      ...(request.open ? { open: true } : { allow: request.allow }),
      readOnly: backstore.readOnly,
      ...(chap === undefined ? {} : { chap }),
    });
  } catch (error) {
    const code = hasCode(error) ? error.code : undefined;
    const hint =
      code === 'TCMU_ERR_MODULE_MISSING'
        ? 'load the kernel iSCSI target: modprobe iscsi_target_mod'
        : code === 'TCMU_ERR_ALREADY_EXISTS'
          ? 'give another --iscsi-iqn, or remove the old export (tcmu rm --stale)'
          : undefined;
    throw new CliError(
      'TCMU_ERR_CLI_ISCSI',
      `iSCSI export failed: ${error instanceof Error ? error.message : String(error)}`,
      { ...(hint === undefined ? {} : { hint }), cause: error },
    );
  }
  const url = `iscsi://${request.portal}/${exported.iqn}/0`;
  logger.info(
    {
      iqn: exported.iqn,
      portal: request.portal,
      access: request.open ? 'open' : request.allow,
      chap: exported.chap,
      readOnly: exported.readOnly,
    },
    `exported over iSCSI: ${url}`,
  );
  return { iqn: exported.iqn, portal: request.portal, url, remove: () => exported.remove() };
}
