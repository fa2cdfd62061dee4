/**
 * Named consumers in the region (see services/log/Consumers.ts): each is a subscriber line of
 * its topic with `durable` 2, claimed when the consumer is created and released when it is
 * deleted, so its cursor holds retention with or without a member (`lowestDurableCursor`).
 * The line's pid word stays 0 (held by no process: never reclaimed as a dead owner's) until
 * the consumer is deleted; a consumer's line is never claimed whatever its pid word says (its
 * creator may have been killed before clearing it: `claimSubscriberLine`); the active member's
 * pid is the `member` word, with 16 bits of its start tag beside it (a later process under the pid
 * is not the member), taken together by compare-and-swap from 0 or from a dead member's. Two
 * processes creating the same name at once both claim a line; the later line (higher index)
 * then deletes itself and joins the first.
 *
 * A deletion (`erase`) first takes the `member` word by compare-and-swap (from 0 or a dead
 * member's) to the deleter's mark, minus its pid: one deleter at a time, a joiner sees the
 * consumer busy, and whatever pid the claim word holds (a killed creator's, even reused) stops
 * nothing. It then checks the line is still the consumer it found (occurrence and name: the line
 * may have been deleted and taken by another consumer meanwhile) and, if not, puts the word
 * back and leaves the line alone; retention never stops holding for it. Then its pid goes in
 * the claim word (a deleter killed from here on leaves a dead owner's line, reclaimed), and
 * `durable` 0 and the release end it. A mark whose deleter died is taken over by the next one.
 *
 * A broker whose appends a consumer's hold kept waiting past its bound cuts it off
 * (`cutOffHolding`): `durable` 2 → 3 by compare-and-swap, so whichever process notices first does
 * it, once. The line keeps its name and committed offset; a member sees the 3 at its next pull or
 * commit, and the next member to join takes the hold again (`resume`, 3 → 2).
 *
 * These rules are `consumersOver`, over a `ConsumerBacking`: the live layer's is the region's log
 * area, the fake's (ConsumersMemory.ts) the in-process store's private region, whose subscriber
 * lines the store's durable subscribers and appends use as the region's are used.
 */
import { Effect, Layer } from "effect"
import {
  ConsumerBeingDeleted,
  ConsumerBusy,
  type ConsumerInfo,
  type ConsumerLease,
  ConsumerNameInvalid,
  type ConsumerRules,
  Consumers,
  type ConsumersShape,
  ConsumerTableFull,
  OWN_CONSUMER_PREFIX
} from "../../services/log/Consumers.js"
import type { TopicInfo, TopicNotFound } from "../../services/log/Topics.js"
import { CxlMemory, type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import { Doorbell } from "../../services/region/Doorbell.js"
import { isProcessAlive, ownStartTag, shortStartTag } from "../region/ProcessInfo.js"
import {
  consumerLinesOf,
  consumerName,
  consumersOf,
  CUT_OFF,
  heldLines,
  HOLDING,
  isCutOff as isLineCutOff,
  liveMember as liveMemberOf
} from "./ConsumerLineReads.js"
import type { LogArea } from "./Layout.js"
import {
  claimSubscriberLine,
  lineTaken,
  newOccurrence,
  releaseLine,
  retentionMoved,
  type SubscriberArea
} from "./Participants.js"
import { CONSUMER_NAME_BYTES } from "./Records.js"
import { OrderLineView, ParticipantLineView, SubscriberLineView } from "./RecordViews.js"
import { topicResolver } from "./Topics.js"

const encoder = new TextEncoder()

/**
 * A consumer name as stored: 1–24 UTF-8 bytes, no control characters; cxlog's own (`own`) start
 * with OWN_CONSUMER_PREFIX, and an app's do not.
 */
export const consumerNameBytes = (name: string, own = false): Uint8Array | ConsumerNameInvalid => {
  if (name.startsWith(OWN_CONSUMER_PREFIX) !== own) {
    return new ConsumerNameInvalid({
      name,
      reason: own
        ? `cxlog's own consumers' names start with ${OWN_CONSUMER_PREFIX}`
        : `names starting with ${OWN_CONSUMER_PREFIX} are cxlog's own (a consumer group's hold on its topic)`
    })
  }
  const bytes = encoder.encode(name)
  if (bytes.length === 0 || bytes.length > CONSUMER_NAME_BYTES) {
    return new ConsumerNameInvalid({
      name,
      reason: `must be 1 to ${CONSUMER_NAME_BYTES} bytes of UTF-8, not ${bytes.length}`
    })
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    return new ConsumerNameInvalid({ name, reason: "must not contain control characters" })
  }
  return bytes
}

/** The lowest cursor of the topic's named consumers that hold batch `g` (their cursor is at or before it); Infinity if none. */
export const consumersHolding = (region: CxlMemoryShape, area: SubscriberArea, topic: number, g: number): number => {
  const lines = new SubscriberLineView(region)
  let lowest = Infinity
  for (let s = 0; s < area.config.subscriberSlots; s++) {
    const line = area.subscriber(topic, s)
    region.invalidate(line, LINE_BYTES)
    if (lineTaken(region, line) && lines.durable(line) === HOLDING && lines.cursor(line) <= g) {
      lowest = Math.min(lowest, lines.cursor(line))
    }
  }
  return lowest
}

/**
 * Cuts off the topic's named consumers that hold batch `g`, each by a compare-and-swap of its
 * `durable` word (2 → 3): of the processes that notice at once, one cuts each. Returns how many
 * this call cut off (their hold is gone: the caller wakes whoever waits on retention).
 */
export const cutOffHolding = (region: CxlMemoryShape, area: SubscriberArea, topic: number, g: number): number => {
  const lines = new SubscriberLineView(region)
  let cut = 0
  for (let s = 0; s < area.config.subscriberSlots; s++) {
    const line = area.subscriber(topic, s)
    region.invalidate(line, LINE_BYTES)
    if (!lineTaken(region, line) || lines.durable(line) !== HOLDING || lines.cursor(line) > g) continue
    if (lines.swapDurable(line, HOLDING, CUT_OFF)) cut++
  }
  return cut
}

/** Where a log's named consumers live, and how the log around them learns that retention moved. */
export interface ConsumerBacking {
  /** The bytes of the subscriber lines: the region, or the in-process store's private region. */
  readonly region: CxlMemoryShape
  readonly area: SubscriberArea
  readonly resolve: (topic: string) => Effect.Effect<TopicInfo, TopicNotFound>
  /** The topic's end now (its total order). */
  readonly end: (info: TopicInfo) => number
  /** Retention moved: wakes appends waiting for room, and a sequencer stalled on a full GOI. */
  readonly retentionMoved: (info: TopicInfo) => void
}

/** What the consumer rules work with: the backing, its line views, and this process's part. */
interface ConsumerLines extends ConsumerBacking {
  readonly lines: SubscriberLineView
  readonly participants: ParticipantLineView
  /** Lines this process holds as a consumer's member (a pid alone cannot tell two members in one process apart). */
  readonly held: Set<number>
  /** This process's 16 bits of start tag, kept beside its pid in a member word. */
  readonly ownTag: number
}

const nameOf = (c: ConsumerLines, line: number): string => consumerName(c.region, c.lines, line)

/** Lines of the topic's consumers, in index order. */
const consumerLines = (c: ConsumerLines, info: TopicInfo): Array<number> =>
  consumerLinesOf(c.region, c.area, c.lines, info.id)

const find = (c: ConsumerLines, info: TopicInfo, name: string): number | undefined =>
  consumerLines(c, info).find((line) => nameOf(c, line) === name)

/** `find`, with the line's occurrence read before its name: which creation of the line it found. */
const findCreation = (
  c: ConsumerLines,
  info: TopicInfo,
  name: string
): { readonly line: number; readonly occurrence: number } | undefined => {
  for (const line of consumerLines(c, info)) {
    const occurrence = c.participants.occurrence(line)
    if (nameOf(c, line) === name) return { line, occurrence }
  }
  return undefined
}

/** The member's pid if a live member holds the line, else 0 (ConsumerLineReads.ts). */
const liveMember = (c: ConsumerLines, line: number): number => liveMemberOf(c.lines, c.held, line)

/** The pid of a live process deleting the consumer (its mark in `member`), else 0. */
const liveDeleter = (c: ConsumerLines, line: number): number => {
  const { pid, tag } = c.lines.memberClaim(line)
  return pid < 0 && -pid !== process.pid && isProcessAlive(-pid, tag, 16) ? -pid : 0
}

const isCutOff = (c: ConsumerLines, line: number): boolean => isLineCutOff(c.region, c.lines, line)

const moveTo = (c: ConsumerLines, line: number, offset: number, globalSeq: number): void => {
  c.lines.setCommitted(line, offset)
  c.lines.setCursor(line, globalSeq)
  c.region.publish(line, LINE_BYTES)
  // The sequentially consistent store is the fence `ringRoomWaiters` relies on.
  c.lines.storeDurable(line, HOLDING)
}

/** Whether `line` still is consumer `name` of its creation `occurrence` (not deleted, nor deleted and taken by another consumer). */
const stillConsumer = (c: ConsumerLines, line: number, occurrence: number, name: string): boolean => {
  c.region.invalidate(line, LINE_BYTES)
  const durable = c.lines.durable(line)
  return c.participants.occurrence(line) === occurrence && nameOf(c, line) === name &&
    (durable === HOLDING || durable === CUT_OFF)
}

/**
 * Deletes the consumer `name` found in `line` (its creation `occurrence`), whose member word
 * is `member` when the caller is that member (a creator undoing its line), else not a live
 * member's. "gone": the line is no longer that consumer (deleted, or taken by another).
 */
const erase = (
  c: ConsumerLines,
  info: TopicInfo,
  line: number,
  occurrence: number,
  name: string,
  member?: number
): "erased" | "gone" | ConsumerBusy | ConsumerBeingDeleted => {
  const { lines, participants } = c
  const mark = -process.pid
  // The member word from free, a dead member's or a dead deleter's to this deleter's mark: one deleter at a time.
  let replaced: { readonly pid: number; readonly tag: number }
  for (;;) {
    replaced = lines.memberClaim(line)
    if (!stillConsumer(c, line, occurrence, name)) return "gone"
    if (member === undefined) {
      const deleter = liveDeleter(c, line)
      if (deleter !== 0) return new ConsumerBeingDeleted({ topic: info.name, name, pid: deleter })
      const live = liveMember(c, line)
      if (live !== 0) return new ConsumerBusy({ topic: info.name, name, pid: live })
    } else if (replaced.pid !== member) {
      return "gone"
    }
    if (lines.swapMember(line, replaced, mark, c.ownTag)) break
  }
  const marked = { pid: mark, tag: c.ownTag }
  // Checked again: the line may have been deleted and taken by another consumer between the look and the swap.
  if (!stillConsumer(c, line, occurrence, name)) {
    lines.swapMember(line, marked, replaced.pid, replaced.tag)
    return "gone"
  }
  // The line names this process until it is free (a consumer's names none, or a killed creator's
  // pid): a deleter killed from here on leaves a dead owner's line, reclaimed, not one held for good.
  for (;;) {
    const claim = participants.claim(line)
    if (claim.occurrence !== occurrence) {
      lines.swapMember(line, marked, replaced.pid, replaced.tag)
      return "gone"
    }
    if (participants.swapClaim(line, occurrence, claim.pid, occurrence, process.pid)) break
  }
  lines.storeDurable(line, 0)
  lines.setNameLength(line, 0)
  lines.storeMember(line, 0, 0)
  releaseLine(c.region, line, occurrence)
  c.retentionMoved(info)
  return "erased"
}

/** Creates the consumer at `initial` in a free line, its member this process; undefined when every line is taken. */
const create = (
  c: ConsumerLines,
  info: TopicInfo,
  name: Uint8Array,
  initial: { offset: number; globalSeq: number }
): number | undefined => {
  const { region, lines, participants } = c
  const occurrence = newOccurrence()
  for (let s = 0; s < c.area.config.subscriberSlots; s++) {
    const line = c.area.subscriber(info.id, s)
    if (claimSubscriberLine(region, line, occurrence, 0) !== 0) continue
    region.bytes.set(name, lines.nameAt(line))
    lines.setNameLength(line, name.length)
    lines.storeMember(line, process.pid, c.ownTag)
    moveTo(c, line, initial.offset, initial.globalSeq)
    // Held by the consumer from now on, not by this process: a pid of 0 is never taken for a dead owner's.
    participants.storePid(line, 0)
    region.publish(line, LINE_BYTES)
    return line
  }
  return undefined
}

/** Takes consumer `name` as this process's member, creating it at `initial` if it does not exist: its line, and whether this created it. */
const takeMember = (
  c: ConsumerLines,
  info: TopicInfo,
  name: string,
  bytes: Uint8Array,
  initial: { offset: number; globalSeq: number }
): Effect.Effect<{ line: number; created: boolean }, ConsumerBusy | ConsumerTableFull> =>
  Effect.suspend((): Effect.Effect<{ line: number; created: boolean }, ConsumerBusy | ConsumerTableFull> => {
    const { lines, participants, held } = c
    const topic = info.name
    const existing = find(c, info, name)
    if (existing === undefined) {
      const line = create(c, info, bytes, initial)
      if (line === undefined) return Effect.fail(new ConsumerTableFull({ topic, slots: c.area.config.subscriberSlots }))
      const first = find(c, info, name)
      if (first !== line && first !== undefined) {
        // Created at the same time elsewhere: the first line is the consumer.
        erase(c, info, line, participants.occurrence(line), name, process.pid)
        return Effect.fail(new ConsumerBusy({ topic, name, pid: lines.member(first) }))
      }
      held.add(line)
      return Effect.succeed({ line, created: true })
    }
    const member = lines.memberClaim(existing)
    const live = liveMember(c, existing) || liveDeleter(c, existing)
    if (live !== 0 || held.has(existing)) {
      return Effect.fail(new ConsumerBusy({ topic, name, pid: live || process.pid }))
    }
    if (!lines.swapMember(existing, member, process.pid, c.ownTag)) {
      return Effect.fail(new ConsumerBusy({ topic, name, pid: lines.member(existing) }))
    }
    held.add(existing)
    return Effect.succeed({ line: existing, created: false })
  })

/** The member's lease on the consumer in `line`. */
const leaseOf = (c: ConsumerLines, info: TopicInfo, name: string, line: number, created: boolean): ConsumerLease => {
  const { region, lines } = c
  return {
    topic: info.name,
    name,
    created,
    committed: () => {
      region.invalidate(line, LINE_BYTES)
      return lines.committed(line)
    },
    commit: (offset, globalSeq) => {
      if (!c.held.has(line)) return true
      if (isCutOff(c, line)) return false
      lines.setCommitted(line, offset)
      lines.setCursor(line, globalSeq)
      region.publish(line, LINE_BYTES)
      // A sequentially consistent read-modify-write: the fence `ringRoomWaiters` relies on. Should a
      // broker cut the consumer off meanwhile, the commit stands and the next pull reports the cut.
      lines.swapDurable(line, HOLDING, HOLDING)
      c.retentionMoved(info)
      return true
    },
    cutOff: () => isCutOff(c, line),
    resume: () => void lines.swapDurable(line, CUT_OFF, HOLDING),
    relinquish: () => {
      if (lines.swapDurable(line, HOLDING, CUT_OFF)) c.retentionMoved(info)
    }
  }
}

const join = (c: ConsumerLines, own: boolean): ConsumerRules["join"] => (topic, name, initial) =>
  Effect.gen(function*() {
    const bytes = consumerNameBytes(name, own)
    if (bytes instanceof ConsumerNameInvalid) return yield* bytes
    const info = yield* c.resolve(topic)
    const { line, created } = yield* Effect.acquireRelease(
      takeMember(c, info, name, bytes, initial),
      ({ line }) =>
        Effect.sync(() => {
          c.held.delete(line)
          c.lines.swapMember(line, { pid: process.pid, tag: c.ownTag }, 0, 0)
        })
    )
    return leaseOf(c, info, name, line, created)
  })

const list = (c: ConsumerLines, own: boolean): ConsumerRules["list"] => (topic) =>
  Effect.map(c.resolve(topic), (info) => {
    const end = c.end(info)
    return consumersOf(c.region, c.area, c.lines, info.id, end, own).map((consumer): ConsumerInfo => ({
      topic,
      ...consumer,
      end
    }))
  })

const remove = (c: ConsumerLines, own: boolean): ConsumerRules["remove"] => (topic, name) =>
  Effect.flatMap(
    c.resolve(topic),
    (info): Effect.Effect<boolean, ConsumerBusy | ConsumerBeingDeleted | ConsumerNameInvalid> => {
      const invalid = consumerNameBytes(name, own)
      if (invalid instanceof ConsumerNameInvalid) return Effect.fail(invalid)
      // "gone": the line found stopped being the consumer meanwhile; look again (each look finds a newer creation).
      for (let look = 0; look <= c.area.config.subscriberSlots; look++) {
        const found = findCreation(c, info, name)
        if (found === undefined) return Effect.succeed(false)
        const outcome = erase(c, info, found.line, found.occurrence, name)
        if (outcome === "erased") return Effect.succeed(true)
        if (outcome !== "gone") return Effect.fail(outcome)
      }
      return Effect.succeed(false)
    }
  )

/** The Consumers service over a backing: every named consumer, wherever its line lives, runs this code. */
export const consumersOver = (backing: ConsumerBacking): ConsumersShape => {
  const { region } = backing
  const c: ConsumerLines = {
    ...backing,
    lines: new SubscriberLineView(region),
    participants: new ParticipantLineView(region),
    held: heldLines(region),
    ownTag: shortStartTag(ownStartTag())
  }
  return {
    join: join(c, false),
    list: list(c, false),
    remove: remove(c, false),
    own: { join: join(c, true), list: list(c, true), remove: remove(c, true) }
  }
}

// ---- the region ---------------------------------------------------------------------

export const make = (area: LogArea): Effect.Effect<ConsumersShape, never, CxlMemory | Doorbell> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const doorbell = yield* Doorbell
    const orderLines = new OrderLineView(region)
    return consumersOver({
      region,
      area,
      resolve: topicResolver(region, area),
      end: (info) => {
        const orderLine = area.orderLine(info.id)
        region.invalidate(orderLine, LINE_BYTES)
        return orderLines.totalOrder(orderLine)
      },
      retentionMoved: (info) => retentionMoved(region, area, doorbell, info.id)
    })
  })

export const layer = (area: LogArea): Layer.Layer<Consumers, never, CxlMemory | Doorbell> =>
  Layer.effect(Consumers, make(area))
