// What a service manager expects of a daemon: a pid file, and READY=1 on $NOTIFY_SOCKET (systemd
// Type=notify). Node has no unix datagram sockets, so the datagram is sent through @tcmu/libc.
import { readlink, stat, unlink, writeFile } from 'node:fs/promises';
import { AF_UNIX, libc as bindLibc, SOCK_CLOEXEC, SOCK_DGRAM } from '@tcmu/libc';
import { CliError } from './errors.js';

/** sizeof(struct sockaddr_un): a 2-byte family and 108 bytes of path. */
const SUN_PATH = 108;

/** struct sockaddr_un for `path` (an abstract socket when it starts with `@`) and its length. */
export function unixAddress(path: string): { address: Buffer; length: number } {
  const name = Buffer.from(path, 'utf8');
  const abstract = path.startsWith('@');
  if (abstract) name[0] = 0;
  const length = 2 + name.length + (abstract ? 0 : 1);
  if (name.length + (abstract ? 0 : 1) > SUN_PATH) throw new RangeError(`socket path too long: ${path}`);
  const address = Buffer.alloc(2 + SUN_PATH);
  address.writeUInt16LE(AF_UNIX, 0);
  name.copy(address, 2);
  return { address, length };
}

/**
 * Sends `state` (e.g. `READY=1`, `STOPPING=1`, `STATUS=…`) to the service manager when `$NOTIFY_SOCKET`
 * is set, like sd_notify(3). Returns false when there is no socket; throws when sending fails.
 */
export async function notifyServiceManager(
  state: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<boolean> {
  const socketPath = env.NOTIFY_SOCKET;
  if (!socketPath) return false;
  if (!socketPath.startsWith('/') && !socketPath.startsWith('@'))
    throw new Error(`NOTIFY_SOCKET must be an absolute path or start with @, not "${socketPath}"`);
  const { address, length } = unixAddress(socketPath);
  const libc = bindLibc();
  const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`socket(AF_UNIX, SOCK_DGRAM) failed: errno ${libc.errno()}`);
  try {
    const message = Buffer.from(state, 'utf8');
    const sent = libc.sendto(fd, message, message.length, 0, address, length);
    if (sent < 0) throw new Error(`sending to NOTIFY_SOCKET ${socketPath} failed: errno ${libc.errno()}`);
  } finally {
    libc.close(fd);
  }
  return true;
}

/** Writes this process's pid and a newline to `path` (replacing the file). */
export async function writePidFile(path: string, pid: number): Promise<void> {
  try {
    await writeFile(path, `${pid}\n`, { mode: 0o644 });
  } catch (error) {
    throw new CliError(
      'TCMU_ERR_CLI_PIDFILE',
      `cannot write the pid file ${path}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

/** Removes a file if it exists; other failures are returned, not thrown. */
export async function removeFile(path: string): Promise<Error | undefined> {
  try {
    await unlink(path);
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : (error as Error);
  }
}

/** The symbolic link at `path`: its target and whether that target is gone; undefined when `path` is no link. */
export async function inspectLink(path: string): Promise<{ target: string; dangling: boolean } | undefined> {
  let target: string;
  try {
    target = await readlink(path);
  } catch {
    return undefined; // nothing there, or not a link
  }
  const dangling = await stat(path).then(
    () => false,
    () => true,
  );
  return { target, dangling };
}
