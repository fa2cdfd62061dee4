/**
 * A channel object's layout. Its directory entry keeps the shape as parameters
 * ([layout, writerSlots, readerSlots, ringBytes, values' fingerprint]); its extent holds `writerSlots` rings back
 * to back, each a ring of the control plane (a control line, `readerSlots` progress lines, a
 * data area of `ringBytes`). Writer slot i is ring i; ring ids are unique per directory slot,
 * so two channels' rings never share an id.
 */
import { type RingAddress, ringFootprint } from "../../services/control/Rings.js"
import { type ChannelShape, InvalidChannel } from "../../services/ipc/Channels.js"
import { CHANNEL_LIMITS } from "../../services/ipc/ChannelSettings.js"
import type { DirectoryEntry } from "../../services/region/Directory.js"

/** Bumped when the layout of a channel's extent changes: an entry of another layout is refused. */
export const CHANNEL_LAYOUT = 1

/** Ring ids are `directory slot × MAX_WRITER_SLOTS + writer slot`. */
export const MAX_WRITER_SLOTS = CHANNEL_LIMITS.writerSlots
/** Reader slots a ring admits at most in a channel (a subscription holds one on every ring). */
export const MAX_READER_SLOTS = CHANNEL_LIMITS.readerSlots
const MIN_RING_BYTES = CHANNEL_LIMITS.ringBytes.min
const MAX_RING_BYTES = CHANNEL_LIMITS.ringBytes.max

/** Why `shape` cannot be a channel's, or undefined. */
export const shapeProblem = (shape: ChannelShape): string | undefined => {
  const { writerSlots, readerSlots, ringBytes } = shape
  return !Number.isInteger(writerSlots) || writerSlots < 1 || writerSlots > MAX_WRITER_SLOTS
    ? `writerSlots ${writerSlots} must be an integer in [1, ${MAX_WRITER_SLOTS}]`
    : !Number.isInteger(readerSlots) || readerSlots < 1 || readerSlots > MAX_READER_SLOTS
    ? `readerSlots ${readerSlots} must be an integer in [1, ${MAX_READER_SLOTS}]`
    : !Number.isInteger(ringBytes) || ringBytes < MIN_RING_BYTES || ringBytes > MAX_RING_BYTES || ringBytes % 64 !== 0
    ? `ringBytes ${ringBytes} must be a multiple of 64 in [4KiB, 1GiB]`
    : undefined
}

/** Bytes of the extent a channel of `shape` needs. */
export const channelBytes = (shape: ChannelShape): number =>
  shape.writerSlots * ringFootprint(shape.ringBytes, shape.readerSlots)

/** `fingerprint`: the binary layout of its creator's values (BinaryValues.ts), 0 when they go as text or raw. */
export const shapeParams = (shape: ChannelShape, fingerprint = 0): ReadonlyArray<number> => [
  CHANNEL_LAYOUT,
  shape.writerSlots,
  shape.readerSlots,
  shape.ringBytes,
  fingerprint
]

/** The binary layout fingerprint its creator recorded (0: none, or an entry made before fingerprints). */
export const recordedFingerprint = (entry: DirectoryEntry): number => entry.params[4] ?? 0

/** The shape a found entry says, checked against its layout and its extent (a region is never trusted). */
export const entryShape = (entry: DirectoryEntry): ChannelShape | InvalidChannel => {
  const [layout, writerSlots = 0, readerSlots = 0, ringBytes = 0] = entry.params
  const shape = { writerSlots, readerSlots, ringBytes }
  const problem = layout !== CHANNEL_LAYOUT
    ? `its layout is ${layout}, this build reads layout ${CHANNEL_LAYOUT}`
    : shapeProblem(shape) ?? (channelBytes(shape) > entry.extent.bytes
      ? `its ${channelBytes(shape)} bytes of rings exceed its ${entry.extent.bytes}-byte extent`
      : undefined)
  return problem === undefined
    ? shape
    : new InvalidChannel({
      name: entry.name,
      reason: `${problem} (another build's, or damaged: Channels.remove frees its name)`
    })
}

/** Writer slot `writer`'s ring. */
export const ringAddress = (entry: DirectoryEntry, shape: ChannelShape, writer: number): RingAddress => ({
  id: (entry.slot * MAX_WRITER_SLOTS + writer) >>> 0,
  offset: entry.extent.offset + writer * ringFootprint(shape.ringBytes, shape.readerSlots),
  dataBytes: shape.ringBytes,
  readerSlots: shape.readerSlots
})

export const ringAddresses = (entry: DirectoryEntry, shape: ChannelShape): ReadonlyArray<RingAddress> =>
  Array.from({ length: shape.writerSlots }, (_, writer) => ringAddress(entry, shape, writer))
