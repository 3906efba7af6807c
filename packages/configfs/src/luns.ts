import { type Context, readdirOptional, resolveLinkTarget } from './internal';

/** A LUN link of a fabric target, `<fabric>/<target>/tpgt_<N>/lun/lun_<M>/<link>`, that exports a backstore. */
export interface LunLink {
  /** The target's folder name: a WWN (tcm_loop) or an IQN (iSCSI). */
  target: string;
  targetPath: string;
  tpgt: number;
  tpgtPath: string;
  lun: number;
  lunPath: string;
  /** The symlink to the backstore. */
  linkPath: string;
}

/**
 * Every LUN link under `fabric` (in targets whose folder name matches `targetName`) that points at the
 * backstore `devicePath`, in directory order. The one walk of LUNs: tcm_loop and iSCSI alike.
 */
export async function findLunLinks(
  context: Context,
  fabric: string,
  targetName: RegExp,
  devicePath: string,
): Promise<LunLink[]> {
  const found: LunLink[] = [];
  for (const target of await readdirOptional(context, fabric)) {
    if (!targetName.test(target)) continue;
    const targetPath = `${fabric}/${target}`;
    for (const tpgtName of await readdirOptional(context, targetPath)) {
      const tpgtMatch = /^tpgt_(\d+)$/.exec(tpgtName);
      if (!tpgtMatch) continue;
      const tpgtPath = `${targetPath}/${tpgtName}`;
      for (const lunName of await readdirOptional(context, `${tpgtPath}/lun`)) {
        const lunMatch = /^lun_(\d+)$/.exec(lunName);
        if (!lunMatch) continue;
        const lunPath = `${tpgtPath}/lun/${lunName}`;
        for (const linkPath of await symlinksIn(context, lunPath)) {
          if (!(await linksTo(context, linkPath, devicePath))) continue;
          const tpgt = Number(tpgtMatch[1]);
          found.push({ target, targetPath, tpgt, tpgtPath, lun: Number(lunMatch[1]), lunPath, linkPath });
        }
      }
    }
  }
  return found;
}

/** The symlinks directly in `folder`. */
export async function symlinksIn(context: Context, folder: string): Promise<string[]> {
  const links: string[] = [];
  for (const entry of await readdirOptional(context, folder)) {
    if ((await context.system.kind(`${folder}/${entry}`)) === 'symlink') links.push(`${folder}/${entry}`);
  }
  return links;
}

/**
 * True when the LUN link at `linkPath` points at the backstore `devicePath`. configfs reports link
 * targets relative to the link, so they are compared from `target/core/` on.
 */
async function linksTo(context: Context, linkPath: string, devicePath: string): Promise<boolean> {
  let target: string;
  try {
    target = resolveLinkTarget(linkPath, await context.system.readlink(linkPath));
  } catch {
    return false;
  }
  const wanted = devicePath.slice(context.targetRoot.length);
  const index = target.lastIndexOf('/target/core/');
  return target === devicePath || (index >= 0 && target.slice(index + '/target'.length) === wanted);
}

/** The LUN folders (`lun_<N>`) of a TPG. */
export async function lunFolders(context: Context, tpgtPath: string): Promise<string[]> {
  return (await readdirOptional(context, `${tpgtPath}/lun`)).filter((entry) => /^lun_\d+$/.test(entry));
}
