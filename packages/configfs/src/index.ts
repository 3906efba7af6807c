export { formatAddress, parseUioName } from './discovery';
export { ConfigfsError, type ConfigfsErrorCode, type ConfigfsErrorDetails, isConfigfsError } from './errors';
export { listDevices, reattachUserDevice, removeDevice, removeStale } from './inventory';
export {
  DEFAULT_ISCSI_PORTAL,
  deriveIscsiName,
  type ExportIscsiOptions,
  exportIscsi,
  ISCSI_ALIAS_PREFIX,
  ISCSI_IQN_PREFIX,
  type IscsiChap,
  type IscsiExport,
  type ListIscsiExportsOptions,
  listIscsiExports,
  MAX_ISCSI_NAME_LENGTH,
  validateIscsiChap,
  validateIscsiName,
  validateIscsiPortal,
} from './iscsi';
export { type DeviceOwner, formatDevConfig, OWNER_PREFIX, parseDevConfig } from './ownership';
export { mountConfigfs, preflight } from './preflight';
export {
  type CommandResult,
  type NetlinkMembership,
  nodeSystem,
  type PathKind,
  type SystemAccess,
} from './system';
export {
  type FindTakeOverCandidateOptions,
  findTakeOverCandidate,
  parseUnitSerial,
  readDiskTimeout,
  type SetDiskTimeoutOptions,
  setDiskTimeout,
  type TakeOverCandidate,
} from './takeover';
export type {
  AttachLoopbackOptions,
  CreateUserDeviceOptions,
  DeviceRecord,
  IscsiExportRecord,
  KernelFeatures,
  ListDevicesOptions,
  LoopbackAttachment,
  LunRecord,
  PreflightOptions,
  PreflightReport,
  ReattachUserDeviceOptions,
  RemoveDeviceOptions,
  ResizeResult,
  ScsiAddress,
  SystemRoots,
  UserDevice,
} from './types';
export { createUserDevice, randomWwn } from './user-device';
export {
  type AttributeValue,
  MAX_DEV_CONFIG_LENGTH,
  MAX_DEVICE_NAME_LENGTH,
  MAX_HBA,
  MAX_LUN,
  validateDeviceName,
  validateWwn,
} from './validate';
