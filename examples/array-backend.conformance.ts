// Run with vitest: the published conformance suite against the backend above.
import { runBackendConformance } from '@tcmu/backend/testing';
import { openArrayBackend } from './array-backend';

runBackendConformance({ name: 'array', open: async (size) => openArrayBackend(size) });
