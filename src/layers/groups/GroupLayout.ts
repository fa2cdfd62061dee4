/**
 * A consumer group's extent in the region (docs/consumers.md, "The group's object"): a header
 * written once when the head creates the object (its config: topic, byKey, ackWait, maxDeliver,
 * dead-letter topic, start offset), then the shared words — the dispatch frontier and the group's
 * counters —, the member table, the key buckets (byKey) and the pending-entries table. Every
 * record sits on 64-byte lines; offsets are from the region's base, computed here once from the
 * header's counts and checked against the extent before any is used.
 *
 * Frontiers are kept relative to the start offset, so a zeroed extent (what the allocator hands
 * out) is a group at its start: the head writes only the header.
 */
import type { GroupMade } from "../../services/groups/ConsumerGroups.js"
import { GROUP_LIMITS } from "../../services/groups/GroupSettings.js"
import { LINE_BYTES } from "../../services/region/CxlMemory.js"

/** "GRPX", little-endian. */
export const GROUP_MAGIC = 0x58505247
/** Bumped whenever a record below changes its shape: a group of another version is refused as corrupt. */
export const GROUP_LAYOUT_VERSION = 2

/** The most members a group's table may have: a member reference keeps the slot in 10 bits. */
export const MAX_MEMBER_SLOTS = GROUP_LIMITS.memberSlots
export const MAX_PENDING_SLOTS = GROUP_LIMITS.pendingSlots
/** Buckets of a byKey group: a key's hash modulo this picks the bucket, each owned by one member. */
export const KEY_BUCKETS = 1024
/** Claim records of a group without keys (GroupClaims.ts): the claims its members may make before a dead one's are judged. */
export const CLAIM_RECORDS = 16_384
/** The longest topic name a group names (the directory's limit on names). */
export const NAME_BYTES = 128

/** Header fields (line 0), as byte offsets from the extent's start. */
const Header = {
  magic: 0,
  version: 4,
  flags: 8,
  memberSlots: 12,
  pendingSlots: 16,
  buckets: 20,
  ackWaitMs: 24,
  maxDeliver: 28,
  startOffset: 32,
  createdAtMs: 40,
  topicLength: 48,
  deadLetterLength: 52,
  topicGeneration: 56
} as const
const TOPIC_AT = 64
const DEAD_LETTER_AT = TOPIC_AT + NAME_BYTES
/**
 * The dispatch frontier (line 5, a 64-bit word): the next offset to hand out, minus the start
 * offset (low 40 bits), and the number of the claim that moves it next (GroupClaims.ts).
 */
const FRONTIER_AT = 320
/** The group's counters (line 6): 64-bit words any member adds to, for the rare events. */
const COUNTERS_AT = 384
export const HEADER_BYTES = 512

const FLAG_BY_KEY = 1
/** Set when the group holds none of its topic's retention (`holdRetention: false`): a group made before the flag holds it. */
const FLAG_NO_HOLD = 2

/** What a group is, as its header keeps it. */
export interface GroupConfig extends GroupMade {
  readonly topicGeneration: number
  /** Key buckets (byKey), 0 without. */
  readonly buckets: number
}

/** The group's counters, each a 64-bit word of line 6. */
export const Counter = { redeliveries: 0, deadLetters: 1, expired: 2, membership: 3, acked: 4 } as const
export type Counter = keyof typeof Counter

/** Member line fields. */
export const MemberLine = {
  /** pid (low half) and start tag (high half), claimed by compare-and-swap from 0. */
  claim: 0,
  /** Counts the line's claims: a member reference names one (older references are dead). */
  generation: 8,
  state: 12,
  joinedAtMs: 16,
  /** byKey: every message of the member's buckets before this offset was dispatched. */
  scanned: 24,
  maxInFlight: 32,
  delivered: 40,
  acked: 48,
  /** Without keys: the claim this member last tried to win and its count (GroupClaims.ts). */
  intent: 56
} as const

/** Pending entry fields. */
export const PendingEntry = {
  /** Owner reference (low half); version and state (high half). The one word changed by compare-and-swap. */
  control: 0,
  offset: 8,
  deadlineMs: 16,
  deliveries: 24,
  /** The key bucket (byKey), 0 without. */
  lane: 28,
  firstDeliveredAtMs: 32
} as const

/** Where each part of a group's extent is, absolute in the region. */
export interface GroupLayout {
  readonly base: number
  readonly bytes: number
  readonly config: GroupConfig
  readonly frontier: number
  readonly counter: (which: Counter) => number
  readonly member: (slot: number) => number
  /** A bucket's owner word (32 bits). */
  readonly bucketOwner: (bucket: number) => number
  /** A bucket's frontier (64 bits, relative to the start offset). */
  readonly bucketFrontier: (bucket: number) => number
  /** Record `i` of the claims' ring (no keys): claim number and winner. */
  readonly claimRecord: (i: number) => number
  readonly entry: (slot: number) => number
}

const lines = (bytes: number) => Math.ceil(bytes / LINE_BYTES) * LINE_BYTES

const claimRecords = (buckets: number) => (buckets === 0 ? CLAIM_RECORDS : 0)

/** The bytes a group of these counts takes. */
export const groupBytes = (counts: Pick<GroupConfig, "memberSlots" | "pendingSlots" | "buckets">): number =>
  HEADER_BYTES + counts.memberSlots * LINE_BYTES + lines(counts.buckets * 4) + lines(counts.buckets * 8) +
  claimRecords(counts.buckets) * 8 + counts.pendingSlots * LINE_BYTES

export const groupLayout = (base: number, config: GroupConfig): GroupLayout => {
  const members = base + HEADER_BYTES
  const owners = members + config.memberSlots * LINE_BYTES
  const frontiers = owners + lines(config.buckets * 4)
  const claims = frontiers + lines(config.buckets * 8)
  const entries = claims + claimRecords(config.buckets) * 8
  return {
    base,
    bytes: groupBytes(config),
    config,
    frontier: base + FRONTIER_AT,
    counter: (which) => base + COUNTERS_AT + Counter[which] * 8,
    member: (slot) => members + slot * LINE_BYTES,
    bucketOwner: (bucket) => owners + bucket * 4,
    bucketFrontier: (bucket) => frontiers + bucket * 8,
    claimRecord: (i) => claims + i * 8,
    entry: (slot) => entries + slot * LINE_BYTES
  }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { ignoreBOM: true })

/** The header's bytes, as the head writes them into a new group's extent. */
export const encodeHeader = (config: GroupConfig): Uint8Array => {
  const bytes = new Uint8Array(HEADER_BYTES)
  const view = new DataView(bytes.buffer)
  const topic = encoder.encode(config.topic)
  const deadLetter = encoder.encode(config.deadLetterTopic ?? "")
  view.setUint32(Header.magic, GROUP_MAGIC, true)
  view.setUint32(Header.version, GROUP_LAYOUT_VERSION, true)
  view.setUint32(Header.flags, (config.byKey ? FLAG_BY_KEY : 0) | (config.holdRetention ? 0 : FLAG_NO_HOLD), true)
  view.setUint32(Header.memberSlots, config.memberSlots, true)
  view.setUint32(Header.pendingSlots, config.pendingSlots, true)
  view.setUint32(Header.buckets, config.buckets, true)
  view.setUint32(Header.ackWaitMs, config.ackWaitMs, true)
  view.setUint32(Header.maxDeliver, config.maxDeliver, true)
  view.setFloat64(Header.startOffset, config.startOffset, true)
  view.setFloat64(Header.createdAtMs, config.createdAtMs, true)
  view.setUint32(Header.topicLength, topic.length, true)
  view.setUint32(Header.deadLetterLength, deadLetter.length, true)
  view.setUint32(Header.topicGeneration, config.topicGeneration, true)
  bytes.set(topic, TOPIC_AT)
  bytes.set(deadLetter, DEAD_LETTER_AT)
  return bytes
}

/**
 * The config a group's header holds, or why it cannot be one (a corrupt or foreign extent):
 * every count is checked against its limit and the whole layout against the extent's bytes.
 */
export const decodeHeader = (bytes: Uint8Array, base: number, extentBytes: number): GroupConfig | string => {
  if (extentBytes < HEADER_BYTES) return `its extent (${extentBytes} bytes) is smaller than a group's header`
  const view = new DataView(bytes.buffer, bytes.byteOffset + base, HEADER_BYTES)
  const u32 = (at: number) => view.getUint32(at, true)
  if (u32(Header.magic) !== GROUP_MAGIC) return "its header is not a consumer group's"
  if (u32(Header.version) !== GROUP_LAYOUT_VERSION) {
    return `its layout version is ${u32(Header.version)}, this build reads ${GROUP_LAYOUT_VERSION}`
  }
  const memberSlots = u32(Header.memberSlots)
  const pendingSlots = u32(Header.pendingSlots)
  const buckets = u32(Header.buckets)
  const topicLength = u32(Header.topicLength)
  const deadLetterLength = u32(Header.deadLetterLength)
  const byKey = (u32(Header.flags) & FLAG_BY_KEY) !== 0
  if (memberSlots < 1 || memberSlots > MAX_MEMBER_SLOTS) return `${memberSlots} member slots`
  if (pendingSlots < 1 || pendingSlots > MAX_PENDING_SLOTS) return `${pendingSlots} pending slots`
  if (buckets !== (byKey ? KEY_BUCKETS : 0)) return `${buckets} key buckets`
  if (topicLength < 1 || topicLength > NAME_BYTES || deadLetterLength > NAME_BYTES) return "a name's length"
  const config: GroupConfig = {
    topic: decoder.decode(bytes.subarray(base + TOPIC_AT, base + TOPIC_AT + topicLength)),
    topicGeneration: u32(Header.topicGeneration),
    byKey,
    ackWaitMs: u32(Header.ackWaitMs),
    maxDeliver: u32(Header.maxDeliver),
    deadLetterTopic: deadLetterLength === 0
      ? undefined
      : decoder.decode(bytes.subarray(base + DEAD_LETTER_AT, base + DEAD_LETTER_AT + deadLetterLength)),
    startOffset: view.getFloat64(Header.startOffset, true),
    createdAtMs: view.getFloat64(Header.createdAtMs, true),
    memberSlots,
    pendingSlots,
    holdRetention: (u32(Header.flags) & FLAG_NO_HOLD) === 0,
    buckets
  }
  if (!Number.isSafeInteger(config.startOffset) || config.startOffset < 0) return `start offset ${config.startOffset}`
  const needed = groupBytes(config)
  return needed > extentBytes ? `its records need ${needed} bytes, its extent has ${extentBytes}` : config
}
