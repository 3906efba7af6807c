// Joins a generic netlink multicast group (here TCM-USER/config) through @tcmu/libc's sockets, bound
// on first use: importing the package loads no native code. Every failure becomes `undefined` (no
// membership); this module never throws. Messages are host byte order and 4-byte aligned
// (linux/netlink.h, genetlink.h).
import { AF_NETLINK, type Libc, libc, MSG_DONTWAIT, SOCK_CLOEXEC, SOCK_RAW } from '@tcmu/libc';

/** A held netlink group membership; `close()` leaves the group (closes the socket). Idempotent. */
export interface NetlinkMembership {
  close(): void;
}

const NETLINK_GENERIC = 16;
const SOL_NETLINK = 270;
const NETLINK_ADD_MEMBERSHIP = 1;
const GENL_ID_CTRL = 0x10;
const NLM_F_REQUEST = 1;
const NLMSG_ERROR = 2;
const CTRL_CMD_GETFAMILY = 3;
const CTRL_ATTR_FAMILY_NAME = 2;
const CTRL_ATTR_MCAST_GROUPS = 7;
const CTRL_ATTR_MCAST_GRP_NAME = 1;
const CTRL_ATTR_MCAST_GRP_ID = 2;
const NLA_TYPE_MASK = 0x3fff;

const align = (length: number): number => (length + 3) & ~3;

/** The CTRL_CMD_GETFAMILY request for `family` (nlmsghdr + genlmsghdr + one NUL-terminated string attribute). */
export function getFamilyRequest(family: string, sequence: number): Buffer {
  const name = Buffer.from(`${family}\0`, 'utf8');
  const attributeLength = 4 + name.length;
  const total = 16 + 4 + align(attributeLength);
  const message = Buffer.alloc(total);
  message.writeUInt32LE(total, 0);
  message.writeUInt16LE(GENL_ID_CTRL, 4);
  message.writeUInt16LE(NLM_F_REQUEST, 6);
  message.writeUInt32LE(sequence, 8);
  message.writeUInt32LE(0, 12);
  message.writeUInt8(CTRL_CMD_GETFAMILY, 16);
  message.writeUInt8(1, 17);
  message.writeUInt16LE(attributeLength, 20);
  message.writeUInt16LE(CTRL_ATTR_FAMILY_NAME, 22);
  name.copy(message, 24);
  return message;
}

/** Walks netlink attributes in `data[start, end)`; stops at the first malformed one. */
function* attributes(data: Buffer, start: number, end: number): Generator<[number, number, number]> {
  let offset = start;
  while (offset + 4 <= end) {
    const length = data.readUInt16LE(offset);
    const type = data.readUInt16LE(offset + 2) & NLA_TYPE_MASK;
    if (length < 4 || offset + length > end) return;
    yield [type, offset + 4, offset + length];
    offset += align(length);
  }
}

/**
 * The id of multicast group `group` in a CTRL_CMD_GETFAMILY reply (`data`, `length` bytes), or
 * undefined (an error reply, family unknown, group absent, or malformed bytes).
 */
export function findMulticastGroup(data: Buffer, length: number, group: string): number | undefined {
  if (length < 20 || length > data.length) return undefined;
  const messageLength = data.readUInt32LE(0);
  if (messageLength < 20 || messageLength > length || data.readUInt16LE(4) === NLMSG_ERROR) return undefined;
  for (const [type, start, end] of attributes(data, 20, messageLength)) {
    if (type !== CTRL_ATTR_MCAST_GROUPS) continue;
    for (const [, groupStart, groupEnd] of attributes(data, start, end)) {
      let name: string | undefined;
      let id: number | undefined;
      for (const [field, valueStart, valueEnd] of attributes(data, groupStart, groupEnd)) {
        if (field === CTRL_ATTR_MCAST_GRP_NAME)
          name = data.toString('utf8', valueStart, valueEnd).replace(/\0.*$/s, '');
        if (field === CTRL_ATTR_MCAST_GRP_ID && valueEnd - valueStart >= 4)
          id = data.readUInt32LE(valueStart);
      }
      if (name === group && id !== undefined) return id;
    }
  }
  return undefined;
}

/**
 * Opens a NETLINK_GENERIC socket and joins `family`'s multicast group `group`. Undefined when the
 * family is not registered (module not loaded), the group is missing, koffi cannot load, or any call
 * fails. Synchronous but never waits: the kernel queues the GETFAMILY reply before send() returns,
 * and recv() is non-blocking.
 */
export function joinNetlinkGroup(family: string, group: string): NetlinkMembership | undefined {
  let calls: Libc;
  try {
    calls = libc();
  } catch {
    return undefined;
  }
  const fd = calls.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd < 0) return undefined;
  let open = true;
  const close = (): void => {
    if (!open) return;
    open = false;
    calls.close(fd);
  };
  try {
    const address = Buffer.alloc(12);
    address.writeUInt16LE(AF_NETLINK, 0);
    if (calls.bind(fd, address, address.length) !== 0) throw new Error('bind');
    const request = getFamilyRequest(family, 1);
    if (calls.send(fd, request, request.length, 0) !== request.length) throw new Error('send');
    const reply = Buffer.alloc(8192);
    const received = calls.recv(fd, reply, reply.length, MSG_DONTWAIT);
    const id = received > 0 ? findMulticastGroup(reply, received, group) : undefined;
    if (id === undefined) throw new Error('no group');
    const value = Buffer.alloc(4);
    value.writeUInt32LE(id, 0);
    if (calls.setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, value, 4) !== 0)
      throw new Error('setsockopt');
  } catch {
    close();
    return undefined;
  }
  return { close };
}
