// Entries captured from Linux 6.1's target_core_user in the kernel lab (ring.kernel.test.ts writes
// them): they pin the simulated kernel's layout to the real one, and replay through the ring.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { alignUp, commandEntryBaseSize, OP } from './layout';
import { minimalDisk } from './minimal-disk.test-support';
import { decodeEntry, type RingTrace, SimulatedKernel } from './testing/index';

const trace: RingTrace = JSON.parse(
  readFileSync(new URL('./__fixtures__/kernel-trace-linux-6.1.json', import.meta.url), 'utf8'),
);
const raw = (hex: string) => Uint8Array.from(Buffer.from(hex, 'hex'));

describe('a trace captured from the real kernel', () => {
  it('is what the ring saw from Linux 6.1: mailbox version 2, all four capabilities, an 8 MiB ring', () => {
    expect(trace.source).toMatch(/^6\.1\./);
    expect(trace.mailbox).toMatchObject({ version: 2, flags: 0xf, commandRingOffset: 128 });
    expect(trace.mailbox.commandRingSize).toBe(8 * 1024 * 1024 - 128);
    expect(trace.entries.length).toBeGreaterThan(20);
  });

  it('has the entry layout the simulated kernel writes (length, cdb_off, iovecs, contiguity)', () => {
    const { commandRingOffset, commandRingSize, mapSize } = trace.mailbox;
    let expectedPosition = trace.entries[0]!.position;
    let previous = -1;
    for (const captured of trace.entries) {
      const bytes = raw(captured.entry);
      const entry = decodeEntry(bytes, commandRingOffset + captured.position);
      // Consecutive entries are contiguous (no gaps; the ring wraps only with a PAD).
      if (captured.sequence === undefined || captured.sequence === previous + 1)
        expect(captured.position).toBe(expectedPosition);
      previous = captured.sequence ?? previous + 1;
      expectedPosition = (captured.position + entry.length) % commandRingSize;
      expect(entry.length).toBe(bytes.length);
      if (entry.operation !== OP.command) continue;
      const iovecs = entry.iovecCount! + entry.bidirectionalIovecCount! + entry.integrityIovecCount!;
      const base = commandEntryBaseSize(iovecs);
      expect(entry.cdbOffsetInEntry).toBe(base);
      expect(entry.length).toBe(base + alignUp(captured.cdbLength!, 8));
      expect(entry.id).toBeGreaterThanOrEqual(1);
      expect(entry.kernelFlags).toBe(0);
      for (const iovec of entry.iovecs!) {
        expect(iovec.base).toBeGreaterThanOrEqual(commandRingOffset + commandRingSize);
        expect(iovec.base + iovec.length).toBeLessThanOrEqual(mapSize);
      }
    }
  });

  it('is written identically by the simulated kernel for the same commands, and replays with the same outcomes', async () => {
    const kernel = new SimulatedKernel({ commandRingSize: trace.mailbox.commandRingSize });
    const ring = await kernel.openRing();
    const disk = minimalDisk(64 * 1024 * 1024, 512, 'replay');
    const seen: Uint8Array[] = [];
    const taskManagement: string[] = [];
    ring.start({
      onEntry: (entry) => seen.push(entry),
      onTaskManagement: (request) => taskManagement.push(request.name),
      onCommand: (command) => disk.handle(ring, command),
    });
    const results = await kernel.replay(trace);
    const commands = trace.entries.filter(
      (captured) => decodeEntry(raw(captured.entry)).operation === OP.command,
    );
    expect(results).toHaveLength(commands.length);
    results.forEach((result, i) => {
      expect(result.status, `status of entry ${i}`).toBe(commands[i]!.status);
    });
    // Header, counts and CDB bytes agree with the kernel's, entry by entry.
    expect(seen).toHaveLength(trace.entries.length);
    trace.entries.forEach((captured, i) => {
      const real = decodeEntry(raw(captured.entry), trace.mailbox.commandRingOffset + captured.position);
      const simulated = decodeEntry(seen[i]!);
      expect(simulated.operation).toBe(real.operation);
      if (real.operation === OP.taskManagement) {
        // No offsets or ids in a TMR entry without commands: byte for byte the kernel's.
        expect(Buffer.from(seen[i]!).toString('hex')).toBe(captured.entry);
        return;
      }
      if (real.operation !== OP.command) return;
      expect(simulated.iovecCount).toBe(real.iovecCount);
      expect(simulated.length).toBe(real.length);
      const cdbLength = captured.cdbLength!;
      const realCdb = real.cdb!.subarray(0, cdbLength);
      const simulatedBytes = seen[i]!;
      const simulatedCdbOffset = simulated.length - alignUp(cdbLength, 8);
      expect(
        Buffer.from(simulatedBytes.subarray(simulatedCdbOffset, simulatedCdbOffset + cdbLength)),
      ).toEqual(Buffer.from(realCdb));
    });
    const realResets = trace.entries.filter(
      (captured) => decodeEntry(raw(captured.entry)).operation === OP.taskManagement,
    );
    expect(realResets.length).toBeGreaterThan(0);
    expect(taskManagement).toEqual(realResets.map(() => 'lun-reset'));
    await ring.close();
    await kernel.close();
  });
});
