// A custom SCSI target: two vendor commands of its own, the standard SBC emulation for everything else
// (READ, WRITE, INQUIRY, REPORT SUPPORTED OPERATION CODES, which lists the two new ones, …).
import { openMemoryBackend } from '@tcmu/backend-memory';
import { createEmulation, good, respondWithData, serveRing } from '@tcmu/core';
import { SimulatedKernel } from '@tcmu/ring/testing';
import { buildCdb } from '@tcmu/scsi';

let pings = 0;
const emulation = createEmulation({
  commands: [
    // PING (0xC0): counts, answers GOOD.
    {
      name: 'PING',
      opcode: 0xc0,
      cdbUsage: Uint8Array.of(0xc0, 0, 0, 0, 0, 0),
      handle: () => {
        pings += 1;
        return good();
      },
    },
    // PING COUNT (0xC1): the count as 4 bytes of data-in, cut to the CDB's allocation length (byte 4).
    {
      name: 'PING COUNT',
      opcode: 0xc1,
      cdbUsage: Uint8Array.of(0xc1, 0, 0, 0, 0xff, 0),
      handle: (command) =>
        respondWithData(command, Uint8Array.of(0, 0, 0, pings).subarray(0, command.cdb[4])),
    },
  ],
});

// Served here by the simulated kernel; openDevice({ name, handler: emulation, backend }) makes it a /dev/sdX.
const backend = await openMemoryBackend({ size: 1 << 20 });
const kernel = new SimulatedKernel();
const served = serveRing(await kernel.openRing(), emulation, { backend, powerOnUnitAttention: false });
await kernel.submit({ cdb: Uint8Array.of(0xc0, 0, 0, 0, 0, 0) });
await kernel.submit({ cdb: Uint8Array.of(0xc0, 0, 0, 0, 0, 0) });
const count = await kernel.submit({ cdb: Uint8Array.of(0xc1, 0, 0, 0, 4, 0), dataInLength: 4 });
const read = await kernel.submit({
  cdb: buildCdb({ name: 'READ(10)', lba: 0n, transferLength: 1 }),
  dataInLength: 512,
});
console.log(count.status, count.dataIn?.[3], read.status); // 0 2 0
await served.close();
await kernel.close();
