import { describe, expect, it } from 'vitest';
import { findMulticastGroup, getFamilyRequest, joinNetlinkGroup } from './netlink';

function attribute(type: number, value: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt16LE(4 + value.length, 0);
  header.writeUInt16LE(type, 2);
  const padding = Buffer.alloc((4 - (value.length % 4)) % 4);
  return Buffer.concat([header, value, padding]);
}

function u32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32LE(value, 0);
  return buffer;
}

function reply(type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(20);
  header.writeUInt32LE(20 + body.length, 0);
  header.writeUInt16LE(type, 4);
  header.writeUInt8(1, 16); // CTRL_CMD_NEWFAMILY
  return Buffer.concat([header, body]);
}

describe('generic netlink', () => {
  it('builds a 4-byte aligned CTRL_CMD_GETFAMILY request', () => {
    const request = getFamilyRequest('TCM-USER', 7);
    expect(request.length).toBe(36); // 16 nlmsghdr + 4 genlmsghdr + align(4 + 9)
    expect(request.readUInt32LE(0)).toBe(36);
    expect(request.readUInt16LE(4)).toBe(0x10);
    expect(request.readUInt16LE(6)).toBe(1);
    expect(request.readUInt32LE(8)).toBe(7);
    expect([request[16], request[17]]).toEqual([3, 1]);
    expect(request.readUInt16LE(20)).toBe(13);
    expect(request.readUInt16LE(22)).toBe(2);
    expect(request.toString('latin1', 24, 33)).toBe('TCM-USER\0');
  });

  it('finds a multicast group id in a GETFAMILY reply and rejects errors and garbage', () => {
    const groups = attribute(
      7,
      Buffer.concat([
        attribute(1, Buffer.concat([attribute(1, Buffer.from('other\0')), attribute(2, u32(5))])),
        attribute(2, Buffer.concat([attribute(1, Buffer.from('config\0')), attribute(2, u32(11))])),
      ]),
    );
    const good = reply(0x1a, Buffer.concat([attribute(2, Buffer.from('TCM-USER\0')), groups]));
    expect(findMulticastGroup(good, good.length, 'config')).toBe(11);
    expect(findMulticastGroup(good, good.length, 'other')).toBe(5);
    expect(findMulticastGroup(good, good.length, 'missing')).toBeUndefined();
    expect(findMulticastGroup(reply(2, u32(0xfffffffe)), 24, 'config')).toBeUndefined(); // NLMSG_ERROR -ENOENT
    expect(findMulticastGroup(good, 12, 'config')).toBeUndefined();
    const truncated = Buffer.from(good);
    truncated.writeUInt16LE(0xfff0, 20); // attribute longer than the message
    expect(findMulticastGroup(truncated, truncated.length, 'config')).toBeUndefined();
  });

  it('joins a real group (nlctrl/notify, always registered) and returns undefined for an unknown family', (context) => {
    if (process.platform !== 'linux') return context.skip('netlink sockets exist only on Linux');
    const membership = joinNetlinkGroup('nlctrl', 'notify');
    expect(membership).toBeDefined();
    membership?.close();
    membership?.close(); // idempotent
    expect(joinNetlinkGroup('tcmu-no-such-family', 'config')).toBeUndefined();
  });
});
