// Needs root and a kernel with target_core_user and tcm_loop (or the kernel lab).
import { openMemoryBackend } from '@tcmu/backend-memory';
import { openDevice } from '@tcmu/core';

const backend = await openMemoryBackend({ size: 1 << 30 });
const device = await openDevice({ name: 'scratch', size: backend.size, blockSize: 512, backend });
console.log(device.devicePath); // /dev/sdX: mkfs it, mount it, export it over iSCSI
await device.close(); // drains in-flight commands, leaves nothing in configfs
