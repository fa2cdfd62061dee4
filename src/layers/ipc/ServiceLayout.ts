/**
 * A service object's layout. Its directory entry keeps the shape as parameters
 * ([layout, callerSlots, ringBytes, framing]: framing 0 for cxlog Rpc frames, 1 for frames the
 * application encodes, an entry without it being 0); its extent holds the reply ring (written by the server, a
 * reader slot per caller slot) and then one request ring per caller slot (written by the caller
 * that holds the slot, read by the server), each a ring of the control plane. Ring ids are unique
 * per directory slot: `directory slot × 256` for the replies, `+ 1 + caller` for the requests.
 */
import { type RingAddress, ringFootprint } from "../../services/control/Rings.js"
import { type ServiceShape, ServiceUnavailable } from "../../services/ipc/Services.js"
import { SERVICE_LIMITS } from "../../services/ipc/ServiceSettings.js"
import type { DirectoryEntry } from "../../services/region/Directory.js"

/** Bumped when the layout of a service's extent changes: an entry of another layout is refused. */
export const SERVICE_LAYOUT = 1

export const MAX_CALLER_SLOTS = SERVICE_LIMITS.callerSlots
/** The reply ring's id, and one request ring's per caller. */
const RING_IDS_PER_SLOT = MAX_CALLER_SLOTS + 1
const MIN_RING_BYTES = SERVICE_LIMITS.ringBytes.min
const MAX_RING_BYTES = SERVICE_LIMITS.ringBytes.max
/** The server is a request ring's only reader. */
const REQUEST_READERS = 1

/** What a service's frames are: cxlog's Rpc (`serve`, `connect`) or the application's own (`serveFrames`, `connectFrames`). */
export type ServiceFraming = "rpc" | "application"
const FRAMING_CODES: Record<ServiceFraming, number> = { rpc: 0, application: 1 }
const FRAMING_NAMES: Record<ServiceFraming, string> = {
  rpc: "cxlog Rpc methods",
  application: "frames the application encodes (e.g. @effect/rpc's)"
}

/** Why `shape` cannot be a service's, or undefined. */
export const shapeProblem = ({ callerSlots, ringBytes }: ServiceShape): string | undefined =>
  !Number.isInteger(callerSlots) || callerSlots < 1 || callerSlots > MAX_CALLER_SLOTS
    ? `callerSlots ${callerSlots} must be an integer in [1, ${MAX_CALLER_SLOTS}]`
    : !Number.isInteger(ringBytes) || ringBytes < MIN_RING_BYTES || ringBytes > MAX_RING_BYTES || ringBytes % 64 !== 0
    ? `ringBytes ${ringBytes} must be a multiple of 64 in [4KiB, 1GiB]`
    : undefined

const replyFootprint = (shape: ServiceShape) => ringFootprint(shape.ringBytes, shape.callerSlots)
const requestFootprint = (shape: ServiceShape) => ringFootprint(shape.ringBytes, REQUEST_READERS)

/** Bytes of the extent a service of `shape` needs. */
export const serviceBytes = (shape: ServiceShape): number =>
  replyFootprint(shape) + shape.callerSlots * requestFootprint(shape)

export const shapeParams = (shape: ServiceShape, framing: ServiceFraming): ReadonlyArray<number> => [
  SERVICE_LAYOUT,
  shape.callerSlots,
  shape.ringBytes,
  FRAMING_CODES[framing]
]

/**
 * The shape a found entry says, checked against its layout and its extent (a region is never
 * trusted), and against `framing` when given: a caller of one framing never reads the other's frames.
 */
export const entryShape = (entry: DirectoryEntry, framing?: ServiceFraming): ServiceShape | ServiceUnavailable => {
  const [layout, callerSlots = 0, ringBytes = 0, framingCode = 0] = entry.params
  const shape = { callerSlots, ringBytes }
  const problem = layout !== SERVICE_LAYOUT
    ? `its layout is ${layout}, this build reads layout ${SERVICE_LAYOUT}`
    : framing !== undefined && framingCode !== FRAMING_CODES[framing]
    ? `it carries ${framingCode === 0 ? FRAMING_NAMES.rpc : FRAMING_NAMES.application}, not ${FRAMING_NAMES[framing]}`
    : shapeProblem(shape) ?? (serviceBytes(shape) > entry.extent.bytes
      ? `its ${serviceBytes(shape)} bytes of rings exceed its ${entry.extent.bytes}-byte extent`
      : undefined)
  return problem === undefined ? shape : new ServiceUnavailable({
    name: entry.name,
    // A framing another open asked for is that open's mistake; anything else is the entry's.
    reason: problem.startsWith("it carries")
      ? problem
      : `${problem} (another build's, or damaged: Services.remove frees its name)`
  })
}

/** The rings of a service: the reply ring and one request ring per caller slot. */
export interface ServiceRings {
  readonly replies: RingAddress
  readonly requests: ReadonlyArray<RingAddress>
}

export const serviceRings = (entry: DirectoryEntry, shape: ServiceShape): ServiceRings => {
  const base = entry.slot * RING_IDS_PER_SLOT
  return {
    replies: {
      id: base >>> 0,
      offset: entry.extent.offset,
      dataBytes: shape.ringBytes,
      readerSlots: shape.callerSlots
    },
    requests: Array.from({ length: shape.callerSlots }, (_, caller) => ({
      id: (base + 1 + caller) >>> 0,
      offset: entry.extent.offset + replyFootprint(shape) + caller * requestFootprint(shape),
      dataBytes: shape.ringBytes,
      readerSlots: REQUEST_READERS
    }))
  }
}
