/**
 * How often a standby head looks at its head's lease unless told (`--standby-check-ms`): a crashed
 * head (its process gone) is replaced well within a second. Apart from Head.ts, so the command
 * table shows it without loading the head.
 */
export const DEFAULT_STANDBY_CHECK_MS = 100
