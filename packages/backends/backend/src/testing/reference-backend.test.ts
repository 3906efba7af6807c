import { runBackendConformance } from './conformance';
import { createReferenceBackend } from './reference-backend';

runBackendConformance({ name: 'reference', open: async (size) => createReferenceBackend(size) });
runBackendConformance({
  name: 'reference without optional operations',
  open: async (size) =>
    createReferenceBackend(size, {
      without: ['flush', 'unmap', 'writeZeroes', 'compareAndWrite', 'getAllocation', 'resize'],
    }),
});
