import { openMemoryBackend } from '@tcmu/backend-memory';

const backend = await openMemoryBackend({ size: 4 * 1024 ** 4 }); // 4 TiB, nothing allocated yet
await backend.write(0, [new TextEncoder().encode('hello')]);
const out = new Uint8Array(5);
await backend.read(0, 5, [out]);
console.log(new TextDecoder().decode(out), backend.allocatedBytes); // hello 4096
