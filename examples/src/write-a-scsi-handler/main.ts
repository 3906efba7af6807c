// The "write a custom SCSI handler" tutorial's runnable example: the counting handler served on
// @tcmu/ring's simulated kernel (what the test does) or, with TCMU, as a real disk (`serveOnKernel`).
import { openMemoryBackend } from '@tcmu/backend-memory';
import { openDevice, serveRing } from '@tcmu/core';
import { SimulatedKernel } from '@tcmu/ring/testing';
import { buildCdb, decodeSense, ScsiStatus } from '@tcmu/scsi';
import { createCountingHandler, READ_COUNTERS_OPCODE } from './counting-handler.ts';

const statusName = (status: number) =>
  status === ScsiStatus.Good
    ? 'GOOD'
    : status === ScsiStatus.CheckCondition
      ? 'CHECK CONDITION'
      : `0x${status.toString(16)}`;

/** Sends a few commands the way an initiator would and returns what came back. */
export async function runOnSimulatedKernel(): Promise<string[]> {
  const lines: string[] = [];
  const backend = await openMemoryBackend({ size: 8 * 1024 * 1024 });
  const { handler, counters } = createCountingHandler();
  const kernel = new SimulatedKernel();
  const served = serveRing(await kernel.openRing(), handler, {
    name: 'counting',
    size: backend.size,
    blockSize: 512,
    backend,
    powerOnUnitAttention: false,
  });
  try {
    const block = new Uint8Array(512).fill(0x42);
    const write = (lba: bigint) =>
      kernel.submit({ cdb: buildCdb({ name: 'WRITE(10)', lba, transferLength: 1 }), dataOut: block });
    const ok = await write(5n);
    lines.push(`WRITE(10) LBA 5: ${statusName(ok.status)}`);
    const refused = await write(0n);
    const sense = decodeSense(refused.sense);
    lines.push(
      `WRITE(10) LBA 0: ${statusName(refused.status)} key ${sense?.key.toString(16)} asc/ascq ${sense?.asc.toString(16)}/${sense?.ascq.toString(16).padStart(2, '0')}`,
    );
    const read = await kernel.submit({
      cdb: buildCdb({ name: 'READ(10)', lba: 5n, transferLength: 1 }),
      dataInLength: 512,
    });
    lines.push(
      `READ(10) LBA 5: ${statusName(read.status)}, ${read.dataIn.every((b) => b === 0x42) ? 'the written bytes' : 'OTHER bytes'}`,
    );
    const cdb = new Uint8Array(10);
    cdb[0] = READ_COUNTERS_OPCODE;
    const vendor = await kernel.submit({ cdb, dataInLength: 12 });
    const view = new DataView(vendor.dataIn.buffer, vendor.dataIn.byteOffset, 12);
    lines.push(
      `READ COUNTERS: ${statusName(vendor.status)} reads ${view.getUint32(0)} writes ${view.getUint32(4)} refused ${view.getUint32(8)}`,
    );
    lines.push(`counters in the process: ${JSON.stringify(counters)}`);
  } finally {
    await served.close();
    await kernel.close();
  }
  return lines;
}

/** On a machine with TCMU (root): the counting handler as /dev/sdX until `stop` resolves. */
export async function serveOnKernel(stop: Promise<void>): Promise<void> {
  const backend = await openMemoryBackend({ size: 64 * 1024 * 1024 });
  const { handler, counters } = createCountingHandler();
  const device = await openDevice({ name: 'counting', size: backend.size, blockSize: 512, backend, handler });
  console.log(`serving ${device.devicePath}`);
  await stop;
  await device.close();
  console.log(`served ${JSON.stringify(counters)}`);
}
