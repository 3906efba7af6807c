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
  checkLbaRange,
  checkWritable,
  fail,
  respondOnError,
} from './emulation/common';
export {
  emulateFormatUnit,
  emulatePreventAllowMediumRemoval,
  emulateRequestSense,
  emulateStartStopUnit,
  emulateTestUnitReady,
} from './emulation/control';
export {
  type AnyCommandDefinition,
  type CommandDefinition,
  defineCommand,
  Emulation,
  type EmulationOptions,
  emulate,
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
  type ServeSettings,
  type ServeTarget,
  serveRing,
} from './serve';
export {
  type CommandNamed,
  type DecodedNamed,
  handlerFunction,
  isCommand,
  type Logger,
  type ScsiCommand,
  type ScsiHandler,
  type ScsiHandlerFunction,
  type ScsiResponse,
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
