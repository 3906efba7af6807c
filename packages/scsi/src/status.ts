/** SCSI status codes (SAM-5 §5.3), the byte the device returns with every command. */
export const ScsiStatus = {
  Good: 0x00,
  CheckCondition: 0x02,
  ConditionMet: 0x04,
  Busy: 0x08,
  ReservationConflict: 0x18,
  TaskSetFull: 0x28,
  AcaActive: 0x30,
  TaskAborted: 0x40,
} as const;

export type ScsiStatus = (typeof ScsiStatus)[keyof typeof ScsiStatus];
