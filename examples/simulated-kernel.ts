// A served disk with no kernel at all: the simulated kernel stands where target_core_user would.
import { openMemoryBackend } from '@tcmu/backend-memory';
import { serveRing } from '@tcmu/core';
import { SimulatedKernel } from '@tcmu/ring/testing';
import { buildCdb } from '@tcmu/scsi';

const backend = await openMemoryBackend({ size: 1 << 20, blockSize: 512 });
const kernel = new SimulatedKernel();
const served = serveRing(await kernel.openRing(), { backend, name: 't' });
// Like a real disk, the first command gets the power-on unit attention (CHECK CONDITION, 06/29 00).
const first = await kernel.submit({ cdb: buildCdb({ name: 'TEST UNIT READY' }) });
console.log(first.status, first.sense?.[2], first.sense?.[12]); // 2 6 41
const result = await kernel.submit({ cdb: buildCdb({ name: 'READ CAPACITY(10)' }), dataInLength: 8 });
console.log(result.status, [...(result.dataIn ?? [])]); // 0 [0, 0, 7, 255, 0, 0, 2, 0]
await served.close();
await kernel.close();
