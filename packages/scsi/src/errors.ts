/** Stable error codes thrown by this package (only for programmer errors: bad arguments to a builder). */
export const ScsiErrorCode = {
  /** A value does not fit the field it is written to (e.g. an LBA above 21 bits in READ(6)). */
  FieldRange: 'TCMU_ERR_SCSI_FIELD_RANGE',
  /** A builder was asked for a command this package does not know. */
  UnknownCommand: 'TCMU_ERR_SCSI_UNKNOWN_COMMAND',
} as const;

export type ScsiErrorCode = (typeof ScsiErrorCode)[keyof typeof ScsiErrorCode];

/** Thrown for invalid arguments to encoders/builders. Match on `code`, not on the class. */
export class ScsiError extends Error {
  readonly code: ScsiErrorCode;

  constructor(code: ScsiErrorCode, message: string) {
    super(message);
    this.name = 'ScsiError';
    this.code = code;
  }
}
