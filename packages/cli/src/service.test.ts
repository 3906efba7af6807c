import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { notifyServiceManager, removeFile, unixAddress, writePidFile } from './service.js';
import { notifyListener } from './test-support.js';

describe('notifyServiceManager', () => {
  it('sends READY=1 as one datagram to the socket in $NOTIFY_SOCKET', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'tcmu-notify-')), 'notify');
    const listener = await notifyListener(path);
    try {
      expect(await notifyServiceManager('READY=1\nSTATUS=serving d1', { NOTIFY_SOCKET: path })).toBe(true);
      expect(await listener.received()).toBe('READY=1\nSTATUS=serving d1');
    } finally {
      listener.stop();
    }
  });

  it('reaches an abstract socket (@name)', async () => {
    const name = `@tcmu-test-${process.pid}-${Date.now()}`;
    const listener = await notifyListener(name);
    try {
      await notifyServiceManager('READY=1', { NOTIFY_SOCKET: name });
      expect(await listener.received()).toBe('READY=1');
    } finally {
      listener.stop();
    }
  });

  it('does nothing without NOTIFY_SOCKET, and fails on a socket nobody listens on', async () => {
    expect(await notifyServiceManager('READY=1', {})).toBe(false);
    const nowhere = join(mkdtempSync(join(tmpdir(), 'tcmu-notify-')), 'none');
    await expect(notifyServiceManager('READY=1', { NOTIFY_SOCKET: nowhere })).rejects.toThrow(/errno 2\b/);
    await expect(notifyServiceManager('READY=1', { NOTIFY_SOCKET: 'relative' })).rejects.toThrow(/absolute/);
  });

  it('encodes sockaddr_un: family, path, and the length the kernel expects', () => {
    const plain = unixAddress('/run/x');
    expect(plain.address.readUInt16LE(0)).toBe(1);
    expect(plain.length).toBe(2 + 6 + 1);
    const abstract = unixAddress('@x');
    expect(abstract.address[2]).toBe(0);
    expect(abstract.length).toBe(2 + 2);
  });
});

describe('pid file', () => {
  it('writes the pid with a newline and removes it; a missing file is fine', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'tcmu-pid-')), 'serve.pid');
    await writePidFile(path, 1234);
    expect(readFileSync(path, 'utf8')).toBe('1234\n');
    expect(await removeFile(path)).toBeUndefined();
    expect(existsSync(path)).toBe(false);
    expect(await removeFile(path)).toBeUndefined();
    await expect(writePidFile('/nonexistent-dir/x.pid', 1)).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_PIDFILE',
    });
  });
});
