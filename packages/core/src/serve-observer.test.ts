import { ScsiStatus } from '@tcmu/scsi';
import { afterEach, describe, expect, it } from 'vitest';
import type { CommandDoneInfo } from './serve';
import { type Harness, harness, pattern } from './test-support';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

describe('onCommandDone', () => {
  it('reports each completed command: CDB, bytes, status, sense key and latency', async () => {
    const seen: CommandDoneInfo[] = [];
    h = await harness({ size: 1024 * 1024, onCommandDone: (info) => seen.push(info) });
    expect(
      (await h.send({ name: 'WRITE(10)', lba: 2n, transferLength: 2 }, { out: pattern(1024, 1) })).status,
    ).toBe(ScsiStatus.Good);
    await h.send({ name: 'READ(10)', lba: 2n, transferLength: 8 }, { inLength: 4096 });
    // Past the end: 05/21 00 LOGICAL BLOCK ADDRESS OUT OF RANGE.
    const outOfRange = await h.send({ name: 'READ(10)', lba: 4096n, transferLength: 1 }, { inLength: 512 });
    expect(outOfRange.status).toBe(ScsiStatus.CheckCondition);
    expect(seen.map((info) => [info.cdb[0], info.dataLength, info.status, info.senseKey])).toEqual([
      [0x2a, 1024, ScsiStatus.Good, undefined],
      [0x28, 4096, ScsiStatus.Good, undefined],
      [0x28, 512, ScsiStatus.CheckCondition, 0x05],
    ]);
    for (const info of seen) {
      expect(info.latencyMs).toBeGreaterThanOrEqual(0);
      expect(Number.isFinite(info.latencyMs)).toBe(true);
    }
  });

  it('keeps serving when the observer throws', async () => {
    let calls = 0;
    h = await harness({
      onCommandDone: () => {
        calls++;
        throw new Error('observer bug');
      },
    });
    expect((await h.send({ name: 'TEST UNIT READY' })).status).toBe(ScsiStatus.Good);
    expect((await h.send({ name: 'TEST UNIT READY' })).status).toBe(ScsiStatus.Good);
    expect(calls).toBe(2);
  });
});
