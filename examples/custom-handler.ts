// A custom SCSI target: two vendor commands, the standard SBC emulation for everything else (READ,
// WRITE, INQUIRY, REPORT SUPPORTED OPERATION CODES, which lists the two new ones, …).
import { openMemoryBackend } from '@tcmu/backend-memory';
import { emulate, good, respondWithData, serveRing } from '@tcmu/core';
import { SimulatedKernel } from '@tcmu/ring/testing';
import { buildCdb } from '@tcmu/scsi';

let pings = 0;
const backend = await openMemoryBackend({ size: 1 << 20 });
const handler = emulate(backend, {
  commands: [
    {
      name: 'PING', // counts, answers GOOD
      opcode: 0xc0,
      cdbUsage: Uint8Array.of(0xc0, 0, 0, 0, 0, 0),
      handle: () => {
        pings += 1;
        return good();
      },
    },
    {
      name: 'PING COUNT', // the count in 4 bytes of data-in, cut to the allocation length (byte 4)
      opcode: 0xc1,
      cdbUsage: Uint8Array.of(0xc1, 0, 0, 0, 0xff, 0),
      handle: (command) =>
        respondWithData(command, Uint8Array.of(0, 0, 0, pings).subarray(0, command.cdb[4])),
    },
  ],
});

// openDevice({ name: 'custom', backend, handler }) makes it a /dev/sdX; here the simulated kernel serves it.
const kernel = new SimulatedKernel();
const served = serveRing(await kernel.openRing(), { backend, handler, powerOnUnitAttention: false });
const send = (cdb: Uint8Array, dataInLength = 0) => kernel.submit({ cdb, dataInLength });
await send(Uint8Array.of(0xc0, 0, 0, 0, 0, 0));
await send(Uint8Array.of(0xc0, 0, 0, 0, 0, 0));
const count = await send(Uint8Array.of(0xc1, 0, 0, 0, 4, 0), 4);
const read = await send(buildCdb({ name: 'READ(10)', lba: 0n, transferLength: 1 }), 512);
console.log(count.status, count.dataIn?.[3], read.status); // 0 2 0
await served.close();
await kernel.close();
