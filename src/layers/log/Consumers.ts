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
 */
import { Effect, Layer } from "effect"
import { CxlMemory, type CxlMemoryShape } from "../../services/region/CxlMemory.js"
import { Doorbell, type DoorbellShape } from "../../services/region/Doorbell.js"
import {
  ConsumerBeingDeleted,
  ConsumerBusy,
  type ConsumerInfo,
  type ConsumerLease,
  ConsumerNameInvalid,
  Consumers,
  type ConsumersShape,
  ConsumerTableFull
} from "../../services/log/Consumers.js"
import type { TopicInfo } from "../../services/log/Topics.js"
import { isProcessAlive, ownStartTag, shortStartTag } from "../region/ProcessInfo.js"
import type { LogArea } from "./Layout.js"
import { claimSubscriberLine, lineTaken, newOccurrence, releaseLine, ringRoomWaiters, sequencerBell } from "./Participants.js"
import { CONSUMER_NAME_BYTES, LINE_BYTES, SubscriberLine } from "./Records.js"
import { OrderLineView, ParticipantLineView, SubscriberLineView } from "./RecordViews.js"
import { topicResolver } from "./Topics.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A consumer name as stored: 1–24 UTF-8 bytes, no control characters. */
export const consumerNameBytes = (name: string): Uint8Array | ConsumerNameInvalid => {
  const bytes = encoder.encode(name)
  if (bytes.length === 0 || bytes.length > CONSUMER_NAME_BYTES) {
    return new ConsumerNameInvalid({ name, reason: `must be 1 to ${CONSUMER_NAME_BYTES} bytes of UTF-8, not ${bytes.length}` })
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return new ConsumerNameInvalid({ name, reason: "must not contain control characters" })
  return bytes
}

/** A named consumer's `durable` word: holding retention, or cut off. */
const HOLDING = 2
const CUT_OFF = 3

/** The lowest cursor of the topic's named consumers that hold batch `g` (their cursor is at or before it); Infinity if none. */
export const consumersHolding = (region: CxlMemoryShape, area: LogArea, topic: number, g: number): number => {
  const lines = new SubscriberLineView(region)
  let lowest = Infinity
  for (let s = 0; s < area.config.subscriberSlots; s++) {
    const line = area.subscriber(topic, s)
    region.invalidate(line, LINE_BYTES)
    if (lineTaken(region, line) && lines.durable(line) === HOLDING && lines.cursor(line) <= g) lowest = Math.min(lowest, lines.cursor(line))
  }
  return lowest
}

/** Retention moved: wakes appends waiting for room, and a sequencer stalled on a full GOI. */
const retentionMovedIn = (region: CxlMemoryShape, area: LogArea, doorbell: DoorbellShape, topic: number) => {
  ringRoomWaiters(region, area, doorbell)
  const orderLine = area.orderLine(topic)
  region.invalidate(orderLine, LINE_BYTES)
  if (new OrderLineView(region).stalled(orderLine) !== 0) sequencerBell(region, doorbell).ring()
}

/**
 * Cuts off the topic's named consumers that hold batch `g`, each by a compare-and-swap of its
 * `durable` word (2 → 3): of the processes that notice at once, one cuts each. Returns how many
 * this call cut off (their hold is gone, and waiting appends are rung).
 */
export const cutOffHolding = (region: CxlMemoryShape, area: LogArea, doorbell: DoorbellShape, topic: number, g: number): number => {
  const lines = new SubscriberLineView(region)
  let cut = 0
  for (let s = 0; s < area.config.subscriberSlots; s++) {
    const line = area.subscriber(topic, s)
    region.invalidate(line, LINE_BYTES)
    if (!lineTaken(region, line) || lines.durable(line) !== HOLDING || lines.cursor(line) > g) continue
    if (lines.swapDurable(line, HOLDING, CUT_OFF)) cut++
  }
  if (cut > 0) retentionMovedIn(region, area, doorbell, topic)
  return cut
}

/** Lines of the region this process holds as a consumer's member (a pid alone cannot tell two members in one process apart). */
const heldByRegion = new WeakMap<CxlMemoryShape, Set<number>>()

export const make = (area: LogArea): Effect.Effect<ConsumersShape, never, CxlMemory | Doorbell> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const doorbell: DoorbellShape = yield* Doorbell
    const lines = new SubscriberLineView(region)
    const participants = new ParticipantLineView(region)
    const orderLines = new OrderLineView(region)
    const resolve = topicResolver(region, area)
    let held = heldByRegion.get(region)
    if (held === undefined) heldByRegion.set(region, held = new Set())
    const heldHere = held
    /** This process's 16 bits of start tag, kept beside its pid in a member word. */
    const ownTag = shortStartTag(ownStartTag())

    const nameOf = (line: number) => decoder.decode(region.bytes.subarray(lines.nameAt(line), lines.nameAt(line) + Math.min(CONSUMER_NAME_BYTES, lines.nameLength(line))))
    const isConsumer = (line: number) => {
      region.invalidate(line, LINE_BYTES)
      const durable = lines.durable(line)
      return lineTaken(region, line) && (durable === HOLDING || durable === CUT_OFF)
    }
    /** Lines of the topic's consumers, in index order. */
    const consumerLines = (info: TopicInfo) => {
      const found: Array<number> = []
      for (let s = 0; s < area.config.subscriberSlots; s++) if (isConsumer(area.subscriber(info.id, s))) found.push(area.subscriber(info.id, s))
      return found
    }
    const find = (info: TopicInfo, name: string) => consumerLines(info).find((line) => nameOf(line) === name)
    /** `find`, with the line's occurrence read before its name: which creation of the line it found. */
    const findCreation = (info: TopicInfo, name: string) => {
      for (const line of consumerLines(info)) {
        const occurrence = participants.occurrence(line)
        if (nameOf(line) === name) return { line, occurrence }
      }
      return undefined
    }
    /**
     * The member's pid if a live member holds the line, else 0 (a deleter's mark is no member). A
     * member is its pid and 16 bits of its start tag: a later process under the pid is not it.
     */
    const liveMember = (line: number) => {
      const { pid, tag } = lines.memberClaim(line)
      if (pid <= 0) return 0
      if (pid === process.pid) return heldHere.has(line) ? pid : 0
      return isProcessAlive(pid, tag, 16) ? pid : 0
    }
    /** The pid of a live process deleting the consumer (its mark in `member`), else 0. */
    const liveDeleter = (line: number) => {
      const { pid, tag } = lines.memberClaim(line)
      return pid < 0 && -pid !== process.pid && isProcessAlive(-pid, tag, 16) ? -pid : 0
    }
    const retentionMoved = (info: TopicInfo) => retentionMovedIn(region, area, doorbell, info.id)
    const isCutOff = (line: number) => {
      region.invalidate(line + SubscriberLine.durable, 4)
      return lines.durable(line) === CUT_OFF
    }
    const endOf = (info: TopicInfo) => {
      const orderLine = area.orderLine(info.id)
      region.invalidate(orderLine, LINE_BYTES)
      return orderLines.totalOrder(orderLine)
    }
    const moveTo = (line: number, offset: number, globalSeq: number) => {
      lines.setCommitted(line, offset)
      lines.setCursor(line, globalSeq)
      region.publish(line, LINE_BYTES)
      // The sequentially consistent store is the fence `ringRoomWaiters` relies on.
      lines.storeDurable(line, HOLDING)
    }
    /**
     * Deletes the consumer `name` found in `line` (its creation `occurrence`), whose member word
     * is `member` when the caller is that member (a creator undoing its line), else not a live
     * member's. "gone": the line is no longer that consumer (deleted, or taken by another).
     */
    const erase = (
      info: TopicInfo,
      line: number,
      occurrence: number,
      name: string,
      member?: number
    ): "erased" | "gone" | ConsumerBusy | ConsumerBeingDeleted => {
      const mark = -process.pid
      /** Whether the line still is the consumer found (not deleted, nor deleted and taken by another consumer). */
      const same = () => {
        region.invalidate(line, LINE_BYTES)
        const durable = lines.durable(line)
        return participants.occurrence(line) === occurrence && nameOf(line) === name && (durable === HOLDING || durable === CUT_OFF)
      }
      // The member word from free, a dead member's or a dead deleter's to this deleter's mark: one deleter at a time.
      let replaced: { readonly pid: number; readonly tag: number }
      for (;;) {
        replaced = lines.memberClaim(line)
        if (!same()) return "gone"
        if (member === undefined) {
          const deleter = liveDeleter(line)
          if (deleter !== 0) return new ConsumerBeingDeleted({ topic: info.name, name, pid: deleter })
          const live = liveMember(line)
          if (live !== 0) return new ConsumerBusy({ topic: info.name, name, pid: live })
        } else if (replaced.pid !== member) {
          return "gone"
        }
        if (lines.swapMember(line, replaced, mark, ownTag)) break
      }
      const marked = { pid: mark, tag: ownTag }
      // Checked again: the line may have been deleted and taken by another consumer between the look and the swap.
      if (!same()) {
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
      releaseLine(region, line, occurrence)
      retentionMoved(info)
      return "erased"
    }

    /** Creates the consumer at `initial` in a free line, its member this process; undefined when every line is taken. */
    const create = (info: TopicInfo, name: Uint8Array, initial: { offset: number; globalSeq: number }): number | undefined => {
      const occurrence = newOccurrence()
      for (let s = 0; s < area.config.subscriberSlots; s++) {
        const line = area.subscriber(info.id, s)
        if (claimSubscriberLine(region, line, occurrence, 0) !== 0) continue
        region.bytes.set(name, lines.nameAt(line))
        lines.setNameLength(line, name.length)
        lines.storeMember(line, process.pid, ownTag)
        moveTo(line, initial.offset, initial.globalSeq)
        // Held by the consumer from now on, not by this process: a pid of 0 is never taken for a dead owner's.
        participants.storePid(line, 0)
        region.publish(line, LINE_BYTES)
        return line
      }
      return undefined
    }

    const join: ConsumersShape["join"] = (topic, name, initial) =>
      Effect.gen(function*() {
        const bytes = consumerNameBytes(name)
        if (bytes instanceof ConsumerNameInvalid) return yield* bytes
        const info = yield* resolve(topic)
        const acquire = Effect.suspend((): Effect.Effect<{ line: number; created: boolean }, ConsumerBusy | ConsumerTableFull> => {
          const existing = find(info, name)
          if (existing === undefined) {
            const line = create(info, bytes, initial)
            if (line === undefined) return Effect.fail(new ConsumerTableFull({ topic, slots: area.config.subscriberSlots }))
            const first = find(info, name)
            if (first !== line && first !== undefined) {
              // Created at the same time elsewhere: the first line is the consumer.
              erase(info, line, participants.occurrence(line), name, process.pid)
              return Effect.fail(new ConsumerBusy({ topic, name, pid: lines.member(first) }))
            }
            heldHere.add(line)
            return Effect.succeed({ line, created: true })
          }
          const member = lines.memberClaim(existing)
          const live = liveMember(existing) || liveDeleter(existing)
          if (live !== 0 || heldHere.has(existing)) return Effect.fail(new ConsumerBusy({ topic, name, pid: live || process.pid }))
          if (!lines.swapMember(existing, member, process.pid, ownTag)) return Effect.fail(new ConsumerBusy({ topic, name, pid: lines.member(existing) }))
          heldHere.add(existing)
          return Effect.succeed({ line: existing, created: false })
        })
        const { line, created } = yield* Effect.acquireRelease(acquire, ({ line }) =>
          Effect.sync(() => {
            heldHere.delete(line)
            lines.swapMember(line, { pid: process.pid, tag: ownTag }, 0, 0)
          }))
        const lease: ConsumerLease = {
          topic,
          name,
          created,
          committed: () => {
            region.invalidate(line, LINE_BYTES)
            return lines.committed(line)
          },
          commit: (offset, globalSeq) => {
            if (!heldHere.has(line)) return true
            if (isCutOff(line)) return false
            lines.setCommitted(line, offset)
            lines.setCursor(line, globalSeq)
            region.publish(line, LINE_BYTES)
            // A sequentially consistent read-modify-write: the fence `ringRoomWaiters` relies on. Should a
            // broker cut the consumer off meanwhile, the commit stands and the next pull reports the cut.
            lines.swapDurable(line, HOLDING, HOLDING)
            retentionMoved(info)
            return true
          },
          cutOff: () => isCutOff(line),
          resume: () => void lines.swapDurable(line, CUT_OFF, HOLDING),
          relinquish: () => {
            if (lines.swapDurable(line, HOLDING, CUT_OFF)) retentionMoved(info)
          }
        }
        return lease
      })

    const list: ConsumersShape["list"] = (topic) =>
      Effect.map(resolve(topic), (info) => {
        const end = endOf(info)
        return consumerLines(info).map((line): ConsumerInfo => {
          const committed = lines.committed(line)
          return { topic, name: nameOf(line), committed, end, lag: Math.max(0, end - committed), member: liveMember(line), cutOff: isCutOff(line) }
        })
      })

    const remove: ConsumersShape["remove"] = (topic, name) =>
      Effect.flatMap(resolve(topic), (info) => {
        // "gone": the line found stopped being the consumer meanwhile; look again (each look finds a newer creation).
        for (let look = 0; look <= area.config.subscriberSlots; look++) {
          const found = findCreation(info, name)
          if (found === undefined) return Effect.succeed(false)
          const outcome = erase(info, found.line, found.occurrence, name)
          if (outcome === "erased") return Effect.succeed(true)
          if (outcome !== "gone") return Effect.fail(outcome)
        }
        return Effect.succeed(false)
      })

    return { join, list, remove }
  })

export const layer = (area: LogArea): Layer.Layer<Consumers, never, CxlMemory | Doorbell> => Layer.effect(Consumers, make(area))
