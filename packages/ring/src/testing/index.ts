export {
  type DecodedEntry,
  decodeEntry,
  type RingTrace,
  type RingTraceEntry,
  SimulatedKernel,
  type SimulatedKernelOptions,
  type SimulatedKernelStatistics,
  type SubmitRequest,
  type SubmitResult,
} from './simulated-kernel';
