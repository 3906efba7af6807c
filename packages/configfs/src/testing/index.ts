export { createFakeKernel, type FakeKernel, type FakeKernelOptions, type FakeOperation } from './fake-kernel';
