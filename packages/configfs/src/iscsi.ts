import { ConfigfsError, errnoCode, ioError } from './errors';
import {
  type Context,
  exists,
  mkdir,
  mkdirUndoable,
  Rollback,
  readdirOptional,
  readOptional,
  removeDirectory,
  removeDirectoryIfUnused,
  resolveRoots,
  symlinkUndoable,
  unlinkOptional,
  withLock,
  write,
} from './internal';
import { findLunLinks, lunFolders, symlinksIn } from './luns';
import type { IscsiExportRecord, SystemRoots } from './types';
import { validateDeviceName, validateHba } from './validate';

// LIO's iSCSI fabric in configfs (iscsi_target_mod):
//   target/iscsi/<target IQN>/tpgt_1/
//     attrib/{generate_node_acls,demo_mode_write_protect,prod_mode_write_protect,authentication,cache_dynamic_acls}
//     auth/{userid,password}                 CHAP for initiators without an ACL (open export)
//     param/TargetAlias                      this toolkit's ownership mark: `tcmu-ts/<device name>`
//     lun/lun_0/<link> → core/user_<hba>/<device>
//     np/<address>:<port>                    a network portal (shared by every target on that address)
//     acls/<initiator IQN>/lun_0/<link> → ../../../lun/lun_0, lun_0/write_protect, auth/{userid,password}
//     enable

/** The TargetAlias prefix that marks an iSCSI target as made by this toolkit. */
export const ISCSI_ALIAS_PREFIX = 'tcmu-ts/';
/** The IQN prefix of derived target names: `<prefix><device name in lower case, `_` as `-`>`. */
export const ISCSI_IQN_PREFIX = 'iqn.2003-01.org.linux-iscsi.tcmu:';
/** The portal `exportIscsi` uses when none is given: this host only. */
export const DEFAULT_ISCSI_PORTAL = '127.0.0.1:3260';
/** Longest iSCSI name (RFC 3720 §3.2.6.1). */
export const MAX_ISCSI_NAME_LENGTH = 223;

const TPGT = 'tpgt_1';
const LUN = 'lun_0';
const IQN =
  /^iqn\.\d{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[a-z0-9.:_-]+)?$/;
const EUI = /^eui\.[0-9a-f]{16}$/;
const NAA = /^naa\.([0-9a-f]{16}|[0-9a-f]{32})$/;

export interface IscsiChap {
  /** CHAP user name the initiator presents: 1-255 printable characters, no whitespace. */
  readonly userid: string;
  /** CHAP secret: 12-255 printable characters, no whitespace. Never logged, never in errors. */
  readonly password: string;
}

export interface ExportIscsiOptions extends SystemRoots {
  /** The backstore to export: `core/user_<hba>/<name>`, created (and enabled) beforehand. */
  name: string;
  /** Its HBA. Default 0. */
  hba?: number;
  /** Target IQN. Default {@link deriveIscsiName}(name). */
  iqn?: string;
  /** Network portals, `a.b.c.d:port` or `[v6]:port`. Default [{@link DEFAULT_ISCSI_PORTAL}]. */
  portals?: readonly string[];
  /**
   * Initiator IQNs allowed to log in (one ACL each, with LUN 0 mapped). Give a non-empty list, or
   * `open: true`; neither (or both) fails with TCMU_ERR_INVALID_ARGUMENT.
   */
  allow?: readonly string[];
  /** Any initiator may log in (`generate_node_acls=1`). */
  open?: boolean;
  /** Initiators get the LUN write-protected (mapped LUN `write_protect=1`, demo/prod mode write protect). */
  readOnly?: boolean;
  /** Require CHAP with these credentials (per ACL, or on the TPG when open). */
  chap?: IscsiChap;
}

/** An iSCSI target this process made for one backstore. */
export interface IscsiExport {
  readonly iqn: string;
  /** `<configfsRoot>/target/iscsi/<iqn>`. */
  readonly configfsPath: string;
  readonly portals: readonly string[];
  /** Allowed initiator IQNs (empty when open). */
  readonly allow: readonly string[];
  readonly open: boolean;
  readonly readOnly: boolean;
  /** CHAP is required (the secret itself is not kept on this object). */
  readonly chap: boolean;
  /**
   * Disables the target (logged-in initiators are disconnected), then removes portals, ACLs, the LUN
   * and the target, and the `iscsi` fabric folder when this call made it and nothing else uses it.
   * Remove the export before the backstore. Idempotent.
   */
  remove(): Promise<void>;
}

function invalid(
  code: 'TCMU_ERR_INVALID_NAME' | 'TCMU_ERR_INVALID_ARGUMENT',
  message: string,
): ConfigfsError {
  return new ConfigfsError(code, message);
}

/**
 * Validates an iSCSI name (`iqn.YYYY-MM.reversed.domain[:anything]`, `eui.` + 16 hex digits, or `naa.`
 * + 16/32 hex digits) in lower case, at most 223 characters. `what` names it in the error.
 */
export function validateIscsiName(value: unknown, what = 'iSCSI name'): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw invalid('TCMU_ERR_INVALID_NAME', `invalid ${what}: must be a non-empty string`);
  }
  const shown = JSON.stringify(value);
  if (value.length > MAX_ISCSI_NAME_LENGTH) {
    throw invalid(
      'TCMU_ERR_INVALID_NAME',
      `invalid ${what} ${shown}: longer than ${MAX_ISCSI_NAME_LENGTH} characters`,
    );
  }
  if (value !== value.toLowerCase()) {
    throw invalid('TCMU_ERR_INVALID_NAME', `invalid ${what} ${shown}: iSCSI names are lower case`);
  }
  if (!IQN.test(value) && !EUI.test(value) && !NAA.test(value)) {
    throw invalid(
      'TCMU_ERR_INVALID_NAME',
      `invalid ${what} ${shown}: expected iqn.YYYY-MM.reversed.domain[:name] (e.g. iqn.2004-10.com.example:host1), eui.<16 hex> or naa.<16|32 hex>`,
    );
  }
  return value;
}

/**
 * The target IQN used when none is given: {@link ISCSI_IQN_PREFIX} + the device name in lower case
 * with `_` as `-`. It depends on the device name only, so a volume served under the same name on
 * another host keeps its target name (initiators only change the portal).
 */
export function deriveIscsiName(name: string): string {
  const device = validateDeviceName(name);
  return validateIscsiName(`${ISCSI_IQN_PREFIX}${device.toLowerCase().replaceAll('_', '-')}`, 'target IQN');
}

/**
 * Validates a network portal `a.b.c.d:port` or `[IPv6]:port` (port 1-65535) and returns it as the
 * kernel names it (IPv6 in lower case). Host names are not accepted: the kernel binds an address.
 */
export function validateIscsiPortal(value: unknown): string {
  if (typeof value !== 'string')
    throw invalid('TCMU_ERR_INVALID_ARGUMENT', 'invalid iSCSI portal: must be a string');
  const shown = JSON.stringify(value);
  const match = /^(?:(\d{1,3}(?:\.\d{1,3}){3})|\[([0-9A-Fa-f:.]+)\]):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  const v4 = match?.[1];
  const v4ok =
    v4 === undefined || v4.split('.').every((part) => Number(part) <= 255 && String(Number(part)) === part);
  const v6 = match?.[2];
  const v6ok =
    v6 === undefined ||
    (v6.includes(':') && /^[0-9a-f:.]+$/i.test(v6) && (v6.match(/::/g) ?? []).length <= 1);
  if (!match || !v4ok || !v6ok || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw invalid(
      'TCMU_ERR_INVALID_ARGUMENT',
      `invalid iSCSI portal ${shown}: expected ADDRESS:PORT with an IPv4 address or [IPv6] and a port 1-65535 (e.g. 127.0.0.1:3260, 0.0.0.0:3260, [::1]:3260)`,
    );
  }
  return v6 === undefined ? value : `[${v6.toLowerCase()}]:${port}`;
}

function validateChapField(what: 'CHAP user' | 'CHAP secret', value: unknown, min: number): string {
  // The secret is never shown: only its length is.
  if (typeof value !== 'string')
    throw invalid('TCMU_ERR_INVALID_ARGUMENT', `invalid ${what}: must be a string`);
  const shownValue = what === 'CHAP user' ? ` ${JSON.stringify(value)}` : '';
  if (value.length < min || value.length > 255) {
    throw invalid(
      'TCMU_ERR_INVALID_ARGUMENT',
      `invalid ${what}${shownValue}: must be ${min}-255 characters (it has ${value.length})`,
    );
  }
  if (!/^[\x21-\x7e]+$/.test(value)) {
    throw invalid(
      'TCMU_ERR_INVALID_ARGUMENT',
      `invalid ${what}${shownValue}: only printable ASCII without spaces is accepted`,
    );
  }
  return value;
}

/** Validates CHAP credentials: user 1-255, secret 12-255 printable ASCII characters without spaces. */
export function validateIscsiChap(value: unknown): IscsiChap {
  if (typeof value !== 'object' || value === null) {
    throw invalid('TCMU_ERR_INVALID_ARGUMENT', 'invalid CHAP credentials: expected { userid, password }');
  }
  const { userid, password } = value as { userid?: unknown; password?: unknown };
  return {
    userid: validateChapField('CHAP user', userid, 1),
    password: validateChapField('CHAP secret', password, 12),
  };
}

function fabricPath(context: Context): string {
  return `${context.targetRoot}/iscsi`;
}

/**
 * Exports a backstore through LIO's iSCSI fabric: one target, TPG 1, LUN 0, the given portals, and
 * either ACLs for the allowed initiators (LUN 0 mapped, write-protected when `readOnly`) or open
 * access. Validates everything before touching configfs; on failure removes everything it made.
 * The backstore must be enabled and its ring served (initiators send commands as soon as they log in).
 */
export async function exportIscsi(options: ExportIscsiOptions): Promise<IscsiExport> {
  const name = validateDeviceName(options.name);
  const hba = validateHba(options.hba ?? 0);
  const iqn =
    options.iqn === undefined ? deriveIscsiName(name) : validateIscsiName(options.iqn, 'target IQN');
  const portals = [...new Set((options.portals ?? [DEFAULT_ISCSI_PORTAL]).map(validateIscsiPortal))];
  if (portals.length === 0) {
    throw invalid('TCMU_ERR_INVALID_ARGUMENT', 'an iSCSI export needs at least one portal');
  }
  const allow = [...new Set((options.allow ?? []).map((entry) => validateIscsiName(entry, 'initiator IQN')))];
  const open = options.open ?? false;
  if (open && allow.length > 0) {
    throw invalid(
      'TCMU_ERR_INVALID_ARGUMENT',
      'an iSCSI export is either open or limited to listed initiators, not both',
    );
  }
  if (!open && allow.length === 0) {
    throw invalid(
      'TCMU_ERR_INVALID_ARGUMENT',
      'an iSCSI export needs the initiator IQNs allowed to log in, or to be explicitly open',
    );
  }
  if (allow.includes(iqn)) {
    throw invalid('TCMU_ERR_INVALID_ARGUMENT', `initiator IQN ${iqn} is the target's own IQN`);
  }
  const chap = options.chap === undefined ? undefined : validateIscsiChap(options.chap);
  const readOnly = options.readOnly ?? false;
  const context = resolveRoots(options);
  const devicePath = `${context.targetRoot}/core/user_${hba}/${name}`;

  return withLock(context, async () => {
    const rollback = new Rollback();
    const fabric = fabricPath(context);
    const targetPath = `${fabric}/${iqn}`;
    const tpgt = `${targetPath}/${TPGT}`;
    let madeFabric = false;
    try {
      if (!(await exists(context, devicePath))) {
        throw new ConfigfsError('TCMU_ERR_NOT_FOUND', `no user device user_${hba}/${name} to export`, {
          path: devicePath,
        });
      }
      if ((await readOptional(context, `${devicePath}/enable`)) !== '1') {
        throw new ConfigfsError('TCMU_ERR_NOT_FOUND', `device user_${hba}/${name} is not enabled`, {
          path: `${devicePath}/enable`,
        });
      }
      if (!(await exists(context, fabric))) {
        try {
          await mkdir(context, fabric); // loads iscsi_target_mod on demand
          madeFabric = true;
          rollback.push(async () => {
            await removeDirectoryIfUnused(context, fabric);
          });
        } catch (error) {
          // Another process made it meanwhile: theirs, and usable.
          if (!(await exists(context, fabric))) throw moduleHint(error, fabric);
        }
      }
      if (await exists(context, targetPath)) {
        throw new ConfigfsError(
          'TCMU_ERR_ALREADY_EXISTS',
          `iSCSI target ${iqn} already exists; give another IQN (or remove the old export)`,
          { path: targetPath },
        );
      }
      await mkdirUndoable(context, targetPath, rollback);
      await mkdirUndoable(context, tpgt, rollback);
      await write(context, `${tpgt}/param/TargetAlias`, `${ISCSI_ALIAS_PREFIX}${name}`);
      // Before any LUN is linked, so no initiator ever sees the disk writable by mistake.
      await write(context, `${tpgt}/attrib/prod_mode_write_protect`, readOnly ? '1' : '0');
      await write(context, `${tpgt}/attrib/demo_mode_write_protect`, readOnly ? '1' : '0');
      await write(context, `${tpgt}/attrib/generate_node_acls`, open ? '1' : '0');
      await write(context, `${tpgt}/attrib/cache_dynamic_acls`, open ? '1' : '0');
      await write(context, `${tpgt}/attrib/authentication`, chap ? '1' : '0');
      if (chap && open) {
        await write(context, `${tpgt}/auth/userid`, chap.userid);
        await writeSecret(context, `${tpgt}/auth/password`, chap.password);
      }

      const lunPath = `${tpgt}/lun/${LUN}`;
      await mkdirUndoable(context, lunPath, rollback);
      await symlinkUndoable(context, devicePath, `${lunPath}/${name}`, rollback);

      for (const initiator of allow) {
        const acl = `${tpgt}/acls/${initiator}`;
        await mkdirUndoable(context, acl, rollback);
        if (chap) {
          await write(context, `${acl}/auth/userid`, chap.userid);
          await writeSecret(context, `${acl}/auth/password`, chap.password);
        }
        const mapped = `${acl}/${LUN}`;
        await mkdirUndoable(context, mapped, rollback);
        await symlinkUndoable(context, lunPath, `${mapped}/${LUN}`, rollback);
        // The kernel applies write_protect to the mapping made by the link, so it is written after it.
        await write(context, `${mapped}/write_protect`, readOnly ? '1' : '0');
      }

      for (const portal of portals) {
        const np = `${tpgt}/np/${portal}`;
        try {
          await context.system.mkdir(np);
        } catch (error) {
          const errno = errnoCode(error);
          if (errno === 'EADDRINUSE' || errno === 'EADDRNOTAVAIL') {
            throw new ConfigfsError(
              'TCMU_ERR_INVALID_ARGUMENT',
              `cannot listen on iSCSI portal ${portal} (${errno}): ${errno === 'EADDRINUSE' ? 'another program uses that port' : 'this host has no such address'}`,
              { path: np, operation: 'mkdir', cause: error },
            );
          }
          throw ioError('mkdir', np, error);
        }
        rollback.push(() => removeDirectory(context, np));
      }

      await write(context, `${tpgt}/enable`, '1');
      rollback.push(() => context.system.writeFile(`${tpgt}/enable`, '0'));
      if (madeFabric) context.state.iscsiFabricCreated = true;
      return new Export(context, {
        iqn,
        configfsPath: targetPath,
        portals,
        allow,
        open,
        readOnly,
        chap: chap !== undefined,
      });
    } catch (error) {
      return rollback.fail(error);
    }
  });
}

/** Writes a secret; a failure names the file but never the text. */
async function writeSecret(context: Context, path: string, secret: string): Promise<void> {
  try {
    await context.system.writeFile(path, secret);
  } catch (error) {
    throw ioError('write the CHAP secret to', path, error);
  }
}

function moduleHint(error: unknown, fabric: string): ConfigfsError {
  const errno = errnoCode(error);
  if (errno === 'ENOENT' || errno === 'ENODEV' || errno === 'EINVAL') {
    return new ConfigfsError(
      'TCMU_ERR_MODULE_MISSING',
      `cannot create ${fabric} (${errno}): the kernel's iSCSI target (iscsi_target_mod) is not available; try modprobe iscsi_target_mod`,
      { path: fabric, operation: 'mkdir', modules: ['iscsi_target_mod'], cause: error },
    );
  }
  return ioError('mkdir', fabric, error);
}

interface ExportState {
  iqn: string;
  configfsPath: string;
  portals: readonly string[];
  allow: readonly string[];
  open: boolean;
  readOnly: boolean;
  chap: boolean;
}

class Export implements IscsiExport {
  readonly #context: Context;
  readonly #state: ExportState;
  #removed = false;

  constructor(context: Context, state: ExportState) {
    this.#context = context;
    this.#state = state;
  }
  get iqn() {
    return this.#state.iqn;
  }
  get configfsPath() {
    return this.#state.configfsPath;
  }
  get portals() {
    return [...this.#state.portals];
  }
  get allow() {
    return [...this.#state.allow];
  }
  get open() {
    return this.#state.open;
  }
  get readOnly() {
    return this.#state.readOnly;
  }
  get chap() {
    return this.#state.chap;
  }

  async remove(): Promise<void> {
    await withLock(this.#context, async () => {
      if (this.#removed) return;
      await removeTarget(this.#context, this.#state.configfsPath);
      this.#removed = true;
      const state = this.#context.state;
      if (state.iscsiFabricCreated && (await removeFabricIfEmpty(this.#context)))
        state.iscsiFabricCreated = false;
    });
  }
}

/** Removes the `iscsi` fabric folder when no target is left in it. True when it is gone. */
async function removeFabricIfEmpty(context: Context): Promise<boolean> {
  const fabric = fabricPath(context);
  const targets = (await readdirOptional(context, fabric)).filter((entry) => /^(iqn|eui|naa)\./.test(entry));
  if (targets.length > 0) return false;
  return removeDirectoryIfUnused(context, fabric);
}

/** Tears one target down in the order the kernel needs: disable, portals, ACLs, LUNs, TPGs, target. */
async function removeTarget(context: Context, targetPath: string): Promise<void> {
  for (const tpgtName of (await readdirOptional(context, targetPath)).filter((e) => /^tpgt_\d+$/.test(e))) {
    const tpgt = `${targetPath}/${tpgtName}`;
    if ((await readOptional(context, `${tpgt}/enable`)) === '1') {
      try {
        await context.system.writeFile(`${tpgt}/enable`, '0');
      } catch (error) {
        if (errnoCode(error) !== 'ENOENT') throw ioError('write "0" to', `${tpgt}/enable`, error);
      }
    }
    for (const portal of await readdirOptional(context, `${tpgt}/np`)) {
      await removeDirectory(context, `${tpgt}/np/${portal}`);
    }
    for (const acl of await readdirOptional(context, `${tpgt}/acls`)) {
      const aclPath = `${tpgt}/acls/${acl}`;
      for (const mapped of (await readdirOptional(context, aclPath)).filter((e) => /^lun_\d+$/.test(e))) {
        for (const link of await symlinksIn(context, `${aclPath}/${mapped}`))
          await unlinkOptional(context, link);
        await removeDirectory(context, `${aclPath}/${mapped}`);
      }
      await removeDirectory(context, aclPath);
    }
    for (const lun of await lunFolders(context, tpgt)) {
      for (const link of await symlinksIn(context, `${tpgt}/lun/${lun}`)) await unlinkOptional(context, link);
      await removeDirectory(context, `${tpgt}/lun/${lun}`);
    }
    await removeDirectory(context, tpgt);
  }
  await removeDirectory(context, targetPath);
}

interface FoundExport extends IscsiExportRecord {
  targetPath: string;
}

/** Every iSCSI target LUN linked to the backstore at `devicePath` (one record per LUN). */
export async function findIscsiExports(context: Context, devicePath: string): Promise<FoundExport[]> {
  const found: FoundExport[] = [];
  const seen = new Set<string>();
  for (const link of await findLunLinks(context, fabricPath(context), /^(iqn|eui|naa)\./, devicePath)) {
    if (seen.has(link.lunPath)) continue;
    seen.add(link.lunPath);
    const tpgt = link.tpgtPath;
    const alias = await readOptional(context, `${tpgt}/param/TargetAlias`);
    found.push({
      iqn: link.target,
      tpgt: link.tpgt,
      lun: link.lun,
      portals: await readdirOptional(context, `${tpgt}/np`),
      acls: await readdirOptional(context, `${tpgt}/acls`),
      open: (await readOptional(context, `${tpgt}/attrib/generate_node_acls`)) === '1',
      enabled: (await readOptional(context, `${tpgt}/enable`)) === '1',
      chap: (await readOptional(context, `${tpgt}/attrib/authentication`)) === '1',
      owned: alias?.startsWith(ISCSI_ALIAS_PREFIX) ?? false,
      targetPath: link.targetPath,
    });
  }
  return found;
}

/**
 * Removes the iSCSI targets this toolkit made for the backstore at `devicePath` (called with the
 * configfs lock held, before the backstore is removed). Targets made by other tools are left alone.
 */
export async function removeIscsiExports(context: Context, devicePath: string): Promise<void> {
  const found = await findIscsiExports(context, devicePath);
  const targets = new Set(found.filter((entry) => entry.owned).map((entry) => entry.targetPath));
  for (const targetPath of targets) await removeTarget(context, targetPath);
  if (targets.size > 0) await removeFabricIfEmpty(context);
}

export interface ListIscsiExportsOptions extends SystemRoots {
  name: string;
  hba?: number;
}

/** The iSCSI targets that export the backstore `core/user_<hba>/<name>`. Read-only. */
export async function listIscsiExports(options: ListIscsiExportsOptions): Promise<IscsiExportRecord[]> {
  const name = validateDeviceName(options.name);
  const hba = validateHba(options.hba ?? 0);
  const context = resolveRoots(options);
  const found = await findIscsiExports(context, `${context.targetRoot}/core/user_${hba}/${name}`);
  return found.map(({ targetPath: _targetPath, ...record }) => record);
}
