/**
 * Names in a data directory: `DIR/STREAM/<first record, 20 digits>.seg`, and beside a closed
 * segment its header index `.idx` (SegmentIndex.ts).
 */

/** A stream's name: one directory of the data directory. */
export const STREAM_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/
/**
 * A stream being removed (`Segments.remove`): renamed to this first, out of the streams' names
 * (a leading dot, which no stream name has), so no open or recovery finds it while it is deleted.
 */
export const REMOVED_NAME = /^\.removed-[A-Za-z0-9._-]+$/
export const removedName = (stream: string): string =>
  `.removed-${stream}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`

/** A segment file's name: its first record's index, 20 digits. */
export const SEGMENT_NAME = /^(\d{20})\.seg$/

const fileName = (base: number, extension: string): string => `${String(base).padStart(20, "0")}.${extension}`
export const segmentFileName = (base: number): string => fileName(base, "seg")
export const indexFileName = (base: number): string => fileName(base, "idx")
