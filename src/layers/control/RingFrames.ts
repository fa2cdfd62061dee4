/**
 * Frame arithmetic shared by both ring layers, so the in-memory fake assigns exactly the
 * sequences the region-backed ring does: an 8-byte header (payload length, position check)
 * then the payload padded to 8 bytes; a frame that would cross the end of the data area is
 * preceded by a padding frame that runs to the end.
 */
import { Effect } from "effect"
import { InvalidRingAddress, type RingAddress } from "../../services/control/Rings.js"
import { LINE_BYTES } from "../../services/region/CxlMemory.js"

export const RING_FRAME_HEADER_BYTES = 8
/** The length word of a padding frame. */
export const PADDING_LENGTH = 0xffffffff
/** Largest `take` batch, in frames. */
export const MAX_BATCH_FRAMES = 65_536
/** How long a writer waiting for room sleeps between reaping dead readers (only while it is held back). */
export const LIVENESS_SLICE_MS = 250
/**
 * How often a reader waiting for frames (idle most of the time: the coordinator reads every
 * slot's request ring) heartbeats and checks that its writer lives, on the shared cadence's
 * grid so a process's idle readers wake together.
 */
export const READER_LIVENESS_MS = 1_000

/** Bytes a frame with `length` payload bytes occupies (header included). */
export const frameSpan = (length: number): number => RING_FRAME_HEADER_BYTES + length + ((8 - (length & 7)) & 7)

/** The header's second word: ties a frame to its position, so stale or garbage bytes never pass as a frame. */
export const frameCheck = (position: number): number => ((position >>> 0) ^ 0x474c5843) >>> 0

/** Bytes a frame of `span` needs at data-area `index`, the padding to the end of the area included. */
export const placementBytes = (index: number, span: number, dataBytes: number): number =>
  index + span > dataBytes ? dataBytes - index + span : span

/** Largest payload a frame may carry with `fraction` of the data area. */
export const maxFrameBytes = (dataBytes: number, fraction: number): number =>
  Math.max(0, Math.floor((dataBytes * fraction) / 8) * 8 - RING_FRAME_HEADER_BYTES)

export const isPosition = (value: number): boolean => Number.isSafeInteger(value) && value >= 0

export const validateAddress = (address: RingAddress): Effect.Effect<void, InvalidRingAddress> => {
  const { id, offset, dataBytes, readerSlots } = address
  const reason = !Number.isInteger(id) || id < 0 || id > 0xffffffff
    ? "id must be a 32-bit unsigned integer"
    : !Number.isSafeInteger(offset) || offset < 0 || offset % LINE_BYTES !== 0
    ? `offset ${offset} must be a non-negative multiple of ${LINE_BYTES}`
    : !Number.isInteger(dataBytes) || dataBytes < 64 || dataBytes % 8 !== 0 || dataBytes >= 2 ** 31
    ? `dataBytes ${dataBytes} must be a multiple of 8 in [64, 2^31)`
    : !Number.isInteger(readerSlots) || readerSlots < 1 || readerSlots > 4096
    ? `readerSlots ${readerSlots} must be in [1, 4096]`
    : undefined
  return reason === undefined ? Effect.void : Effect.fail(new InvalidRingAddress({ ring: Number(id), reason }))
}

/**
 * A frame of at most half the area always fits once readers catch up, padding included;
 * a larger one could need more than a lap after some wrap points.
 */
export const validateFraction = (address: RingAddress, fraction: number): Effect.Effect<number, InvalidRingAddress> =>
  fraction > 0 && fraction <= 0.5
    ? Effect.succeed(maxFrameBytes(address.dataBytes, fraction))
    : Effect.fail(
      new InvalidRingAddress({ ring: address.id, reason: `maxFrameFraction ${fraction} must be in (0, 0.5]` })
    )
