// The "write a backend" tutorial's runnable example: PagedBackend served as a SCSI disk. Without a
// TCMU kernel it runs against @tcmu/ring's simulated kernel (what the test does); with one,
// `serveOnKernel()` makes a real /dev/sdX of it.
import { openDevice, serveRing } from '@tcmu/core';
import { SimulatedKernel } from '@tcmu/ring/testing';
import { buildCdb, ScsiStatus } from '@tcmu/scsi';
import { PagedBackend } from './paged-backend.ts';

/** Serves a 16 MiB PagedBackend on the simulated kernel, writes, reads back, unmaps; returns what it saw. */
export async function runOnSimulatedKernel(): Promise<string[]> {
  const lines: string[] = [];
  const backend = new PagedBackend(16 * 1024 * 1024);
  const kernel = new SimulatedKernel();
  const served = serveRing(await kernel.openRing(), backend, {
    name: 'paged',
    size: backend.size,
    blockSize: 512,
    backend,
    powerOnUnitAttention: false,
  });
  try {
    const data = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
    const wrote = await kernel.submit({
      cdb: buildCdb({ name: 'WRITE(10)', lba: 8n, transferLength: 8 }),
      dataOut: data,
    });
    lines.push(
      `WRITE(10) 8 blocks at LBA 8: status ${wrote.status === ScsiStatus.Good ? 'GOOD' : wrote.status}`,
    );
    const read = await kernel.submit({
      cdb: buildCdb({ name: 'READ(10)', lba: 8n, transferLength: 8 }),
      dataInLength: 4096,
    });
    const same = read.dataIn.length === data.length && read.dataIn.every((byte, i) => byte === data[i]);
    lines.push(
      `READ(10) 8 blocks at LBA 8: ${same ? 'same bytes' : 'DIFFERENT bytes'}; pages stored: ${backend.pagesStored}`,
    );
    const zeros = await kernel.submit({
      cdb: buildCdb({ name: 'READ(10)', lba: 0n, transferLength: 8 }),
      dataInLength: 4096,
    });
    lines.push(
      `READ(10) never-written LBA 0: ${zeros.dataIn.every((byte) => byte === 0) ? 'zeros' : 'NOT zeros'}`,
    );
    const sync = await kernel.submit({
      cdb: buildCdb({ name: 'SYNCHRONIZE CACHE(10)', lba: 0n, transferLength: 0 }),
    });
    lines.push(`SYNCHRONIZE CACHE(10): status ${sync.status === ScsiStatus.Good ? 'GOOD' : sync.status}`);
    await backend.unmap(4096, 4096);
    lines.push(`after unmap of that page: pages stored: ${backend.pagesStored}`);
  } finally {
    await served.close();
    await kernel.close();
  }
  return lines;
}

/** On a machine with TCMU (root): the same backend as a real disk until `stop` resolves. */
export async function serveOnKernel(stop: Promise<void>): Promise<void> {
  const backend = new PagedBackend(256 * 1024 * 1024);
  const device = await openDevice({ name: 'paged', size: backend.size, blockSize: 512, backend });
  console.log(`serving ${device.devicePath}`);
  await stop;
  await device.close();
}
