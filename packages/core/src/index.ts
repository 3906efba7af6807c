export {
  type DeviceCapabilities,
  DeviceContext,
  type DeviceContextOptions,
  type DeviceIdentity,
  type DeviceLimits,
  type DeviceStats,
  generateSerial,
  UnitAttentionQueue,
} from './device';
export { emulateReadCapacity10, emulateReadCapacity16 } from './emulation/capacity';
export {
  emulateFormatUnit,
  emulatePreventAllowMediumRemoval,
  emulateRequestSense,
  emulateStartStopUnit,
  emulateTestUnitReady,
} from './emulation/control';
export {
  type CommandDefinition,
  createEmulation,
  Emulation,
  type EmulationOptions,
  standardCommands,
} from './emulation/handler';
export {
  emulateInquiry,
  encodeInquiryData,
  encodeVpdPage,
  respondWithData,
  supportedVpdPages,
} from './emulation/inquiry';
export {
  emulateCompareAndWrite,
  emulateRead,
  emulateSynchronizeCache,
  emulateUnmap,
  emulateVerify,
  emulateWrite,
  emulateWriteAndVerify,
  emulateWriteSame,
} from './emulation/io';
export { emulateGetLbaStatus } from './emulation/lba-status';
export { emulateModeSelect, emulateModeSense, modePages } from './emulation/mode';
export { emulateReportSupportedOperationCodes } from './emulation/supported-opcodes';
export { CoreError, CoreErrorCode, isCoreError } from './errors';
export {
  DEFAULT_COMMAND_TIMEOUT_SECONDS,
  type OpenDeviceOptions,
  openDevice,
  type RestartWindow,
  SCSI_TIMEOUT_MARGIN_SECONDS,
  type TcmuDevice,
} from './open-device';
export { checkCondition, good, responseForError, statusOnly } from './response';
export {
  type CommandDoneInfo,
  type ServableRing,
  type ServedCloseOptions,
  type ServedDevice,
  type ServeOptions,
  serveRing,
} from './serve';
export {
  handlerFunction,
  isScsiHandler,
  type Logger,
  type ScsiCommand,
  type ScsiHandler,
  type ScsiHandlerFunction,
  type ScsiResponse,
  type ServeTarget,
} from './types';
export {
  type BackendFailureAdvice,
  createWarnOnce,
  describeBackendFailure,
  type WarnOnce,
} from './warn-once';
export {
  type FaultInjectingHandler,
  type FaultRule,
  type HandlerMetrics,
  type MeasuredHandler,
  mediumChangingOpcodes,
  withFaultInjection,
  withLogging,
  withMetrics,
  withReadOnly,
} from './wrappers';
