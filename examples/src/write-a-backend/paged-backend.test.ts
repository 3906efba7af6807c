import { runBackendConformance } from '@tcmu/backend/testing';
import { describe, expect, it } from 'vitest';
import { runOnSimulatedKernel } from './main.ts';
import { PagedBackend } from './paged-backend.ts';

// Every backend runs the shared conformance suite: reads of never-written ranges, partial pages,
// scatter lists, concurrency, out-of-range errors, unmap, capabilities.
runBackendConformance({
  name: 'PagedBackend (tutorial example)',
  open: async (size) => new PagedBackend(size),
});

describe('the write-a-backend example', () => {
  it('serves the backend as a SCSI disk on the simulated kernel', async () => {
    const lines = await runOnSimulatedKernel();
    console.log(lines.join('\n'));
    expect(lines).toEqual([
      'WRITE(10) 8 blocks at LBA 8: status GOOD',
      'READ(10) 8 blocks at LBA 8: same bytes; pages stored: 1',
      'READ(10) never-written LBA 0: zeros',
      'SYNCHRONIZE CACHE(10): status GOOD',
      'after unmap of that page: pages stored: 0',
    ]);
  });
});
