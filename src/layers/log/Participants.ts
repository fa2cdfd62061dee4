/**
 * Participant lines of the log area: who owns a broker slot, who wants to be rung when the
 * log moves (listeners), and the doorbells to ring. A line is claimed by one 64-bit
 * compare-and-swap of its (occurrence, pid) pair from (0, 0) or from a dead owner's, so two
 * claimers never both win, even inside one process, and a claimer killed right after its claim
 * leaves its own pid behind: the line is reclaimed as a dead owner's, never lost. The occurrence
 * carries 16 bits of its claimer's start time (`newOccurrence`), so a line whose pid a later
 * process reuses is still judged its dead owner's (`isLineOwnerAlive`).
 */
import { Effect, type Scope } from "effect"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import type { DoorbellShape } from "../../services/region/Doorbell.js"
import { CLAIM_COUNT_BITS, isLineOwnerAlive, newOccurrence } from "../region/LineClaim.js"
import { Offsets } from "../region/Superblock.js"
import type { LogArea, LogConfig } from "./Layout.js"
import { LeaseLine } from "./Records.js"
import { LeaseLineView, OrderLineView, ParticipantLineView, SubscriberLineView } from "./RecordViews.js"

/** The line views over a region, made once per region (these functions take the region, not views). */
interface LineViews {
  readonly lines: ParticipantLineView
  readonly subscribers: SubscriberLineView
  readonly orders: OrderLineView
  readonly lease: LeaseLineView
}
const viewsByRegion = new WeakMap<CxlMemoryShape, LineViews>()
const views = (region: CxlMemoryShape): LineViews => {
  let found = viewsByRegion.get(region)
  if (found === undefined) {
    found = {
      lines: new ParticipantLineView(region),
      subscribers: new SubscriberLineView(region),
      orders: new OrderLineView(region),
      lease: new LeaseLineView(region)
    }
    viewsByRegion.set(region, found)
  }
  return found
}

/**
 * Where topics' subscriber lines are: the region's log area, or the in-process store's private
 * region (MemoryStore.ts), whose durable subscribers and named consumers run this same code.
 */
export type SubscriberArea = Pick<LogArea, "subscriber"> & { readonly config: Pick<LogConfig, "subscriberSlots"> }

// A participant line is claimed as every line a process holds by its pid (region/LineClaim.ts).
export { isLineOwnerAlive, newOccurrence } from "../region/LineClaim.js"

/** Whether some claim holds the line (its owner may be gone: see `livePid`). */
export const lineTaken = (region: CxlMemoryShape, offset: number): boolean =>
  views(region).lines.occurrence(offset) !== 0

/**
 * The pid holding the line if a live process does (0 if free or its owner is gone). A taken line
 * with pid 0 is held by no process, never reclaimed: a named consumer's (Consumers.ts).
 */
export const livePid = (region: CxlMemoryShape, offset: number): number => {
  const { occurrence, pid } = views(region).lines.claim(offset)
  if (occurrence === 0) return 0
  return pid === 0 ? -1 : isLineOwnerAlive(pid, occurrence) ? pid : 0
}

/** Claims the line for this process unless a live process holds it; returns the live holder's pid, or 0 on success. */
export const claimLine = (region: CxlMemoryShape, offset: number, occurrence: number, doorbell: number): number => {
  const { lines } = views(region)
  const current = lines.claim(offset)
  if (current.occurrence !== 0) {
    if (current.pid === 0) return -1
    if (isLineOwnerAlive(current.pid, current.occurrence)) return current.pid
  }
  // The pid goes in with the claim: there is no moment the line is taken by nobody.
  if (!lines.swapClaim(offset, current.occurrence, current.pid, occurrence, process.pid)) {
    return livePid(region, offset) || -1
  }
  lines.setDoorbell(offset, doorbell)
  region.publish(offset, LINE_BYTES)
  return 0
}

/** Frees the line if `occurrence` still holds it: its doorbell first, then the pair in one compare-and-swap (no moment it names a claim without a pid). */
export const releaseLine = (region: CxlMemoryShape, offset: number, occurrence: number): void => {
  const { lines } = views(region)
  const current = lines.claim(offset)
  if (current.occurrence !== occurrence) return
  lines.setDoorbell(offset, 0)
  region.publish(offset, LINE_BYTES)
  lines.swapClaim(offset, occurrence, current.pid, 0, 0)
  region.publish(offset, LINE_BYTES)
}

/** Whether a doorbell word read from the region names a doorbell line inside it. */
const isBell = (region: CxlMemoryShape, bell: number): boolean =>
  bell > 0 && bell % LINE_BYTES === 0 && region.inBounds(bell, LINE_BYTES)

/** The doorbell a live line names, if it names one inside the region; else 0. */
const bellOf = (region: CxlMemoryShape, offset: number): number => {
  if (!lineTaken(region, offset)) return 0
  const bell = views(region).lines.doorbell(offset)
  return isBell(region, bell) ? bell : 0
}

/**
 * The sequencer's doorbell, named in its lease line: `ring` always, `ringIfWaiting` only
 * while it waits for batches (after a commit, itself a sequentially consistent store).
 */
export const sequencerBell = (region: CxlMemoryShape, doorbell: DoorbellShape) => {
  const { lease } = views(region)
  const at = Offsets.sequencerLease
  const ring = (): void => ringSequencer(region, doorbell)
  const ringIfWaiting = (): void => {
    region.invalidate(at + LeaseLine.waiting, 4)
    if (lease.waiting(at) !== 0) ring()
  }
  return { ring, ringIfWaiting }
}

/** Rings the sequencer's doorbell, named in its lease line. */
const ringSequencer = (region: CxlMemoryShape, doorbell: DoorbellShape): void => {
  const bell = views(region).lease.doorbell(Offsets.sequencerLease)
  if (isBell(region, bell)) doorbell.ring(bell)
}

/** Rings the doorbell a line names, if it names one inside the region. */
export const ringLine = (region: CxlMemoryShape, doorbell: DoorbellShape, offset: number): void => {
  const bell = bellOf(region, offset)
  if (bell !== 0) doorbell.ring(bell)
}

/** Doorbells rung in one sweep (a process's owner and listener lines name the same bell: ring it once). */
const rung: Array<number> = []

/**
 * After something moved a topic's frontiers (a sequencer round, the durable tier): rings every
 * listener with a fiber waiting for progress, every broker owner with an append waiting for room
 * (consumed-through moved), and every broker owner with an ACK tracker waiting for its batches
 * for which `ordered(b)` says true; each doorbell once. The writer committed what moved before
 * (a sequentially consistent store), then reads the counts: a waiter counts itself before it
 * re-checks its condition (see `listening`, `listeningForOrdering`), so it either sees the commit or is
 * counted here.
 */
export const ringWaiters = (
  region: CxlMemoryShape,
  area: LogArea,
  doorbell: DoorbellShape,
  ordered: (broker: number) => boolean
): void => {
  rung.length = 0
  const { lines } = views(region)
  const ringOnce = (offset: number) => {
    const bell = bellOf(region, offset)
    if (bell === 0 || rung.includes(bell)) return
    rung.push(bell)
    doorbell.ring(bell)
  }
  for (let i = 0; i < area.config.listenerSlots; i++) {
    const line = area.listener(i)
    if (lines.roomWaits(line) > 0) ringOnce(line)
  }
  for (let b = 0; b < area.config.maxBrokers; b++) {
    const owner = area.brokerOwner(b)
    if (lines.roomWaits(owner) > 0 || (lines.ackWaits(owner) > 0 && ordered(b))) ringOnce(owner)
  }
}

const anyBroker = () => true

/** `ringWaiters` for a change that may move any session's frontier (ACK trackers of every broker included). */
export const ringEveryone = (region: CxlMemoryShape, area: LogArea, doorbell: DoorbellShape): void =>
  ringWaiters(region, area, doorbell, anyBroker)

/**
 * Retention moved (a durable cursor advanced or left): rings the broker owners with an append
 * waiting for room. The caller wrote its cursor before, then a sequentially consistent store
 * (a full fence), so a broker that starts waiting concurrently either sees the new cursor when
 * it re-checks or is rung here.
 */
export const ringRoomWaiters = (region: CxlMemoryShape, area: LogArea, doorbell: DoorbellShape): void => {
  const { lines } = views(region)
  for (let b = 0; b < area.config.maxBrokers; b++) {
    const owner = area.brokerOwner(b)
    if (lines.roomWaits(owner) > 0) ringLine(region, doorbell, owner)
  }
}

/**
 * Retention of `topic` moved (a durable cursor advanced or left, a named consumer committed, was
 * cut off or deleted): rings the appends waiting for room and, only if the topic's GOI is full, the
 * sequencer (see `ringRoomWaiters` for the fence the caller's store gives).
 */
export const retentionMoved = (region: CxlMemoryShape, area: LogArea, doorbell: DoorbellShape, topic: number): void => {
  ringRoomWaiters(region, area, doorbell)
  const orderLine = area.orderLine(topic)
  region.invalidate(orderLine, LINE_BYTES)
  if (views(region).orders.stalled(orderLine) !== 0) ringSequencer(region, doorbell)
}

/** Counts the appends of the broker owning `owner` that wait for room (see `ringRoomWaiters`). */
export const waitingForRoom = (region: CxlMemoryShape, owner: number) => {
  const { lines } = views(region)
  return {
    /** A new owner starts from no waiter, for room or for ordering (a previous owner may have died while waiting). */
    reset: () => {
      lines.storeRoomWaits(owner, 0)
      lines.storeAckWaits(owner, 0)
    },
    begin: () => lines.addRoomWaits(owner, 1),
    end: () => lines.addRoomWaits(owner, -1)
  }
}

/** A listener's wait: true as soon as `condition()` holds, false after `timeoutMs`. */
export type ListenerAwait = (condition: () => boolean, timeoutMs: number) => Effect.Effect<boolean>

/**
 * A listener's standing wait served from callbacks (`DoorbellShape.watch`), counted as a waiter
 * from the call until the returned stop function: the caller checks its condition once after
 * the call (that is the re-check after counting), as with `DoorbellShape.watch`.
 */
export type ListenerWatch = (
  condition: () => boolean,
  onReady: (satisfied: boolean) => void,
  everyMs: () => number
) => () => void

/** A listener's two ways to wait: a fiber's (`await`) and a callback's (`watch`). */
export interface Listening {
  readonly await: ListenerAwait
  readonly watch: ListenerWatch
}

/**
 * `DoorbellShape.watch` announced to ringers: `count(1)` (a sequentially consistent store) before
 * the watch is registered, `count(-1)` once when it stops. The caller checks its condition once
 * after the call: that is the re-check after counting.
 */
export const countedWatch =
  (doorbell: DoorbellShape, count: (delta: 1 | -1) => void): ListenerWatch => (condition, onReady, everyMs) => {
    count(1)
    const stop = doorbell.watch(condition, onReady, everyMs)
    let stopped = false
    return () => {
      if (stopped) return
      stopped = true
      stop()
      count(-1)
    }
  }

/** Both waits over one wait-count word: counted (a sequentially consistent add) before the doorbell re-checks, uncounted however the wait ends. */
const countedWaits = (doorbell: DoorbellShape, count: (delta: 1 | -1) => void): Listening => {
  const counted = Effect.sync(() => count(1))
  const uncounted = Effect.sync(() => count(-1))
  return {
    // `doorbell.await` checks the condition first: that is the re-check after counting.
    await: (condition, timeoutMs) =>
      Effect.acquireUseRelease(counted, () => doorbell.await(condition, timeoutMs), () => uncounted),
    watch: countedWatch(doorbell, count)
  }
}

/**
 * Registers this process's doorbell in a free listener line until the scope closes, and
 * returns the waits through it: the sequencer rings the line only while something waits there.
 * A waiter counts itself in the line's wait word (a sequentially consistent add) before the
 * doorbell re-checks its condition and parks, and uncounts itself however the wait ends. With
 * every line taken they still work, woken only by their park bound.
 */
export const listening = (
  region: CxlMemoryShape,
  area: LogArea,
  doorbell: DoorbellShape
): Effect.Effect<Listening, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const occurrence = newOccurrence()
      for (let i = 0; i < area.config.listenerSlots; i++) {
        const line = area.listener(i)
        if (claimLine(region, line, occurrence, doorbell.offset) === 0) {
          // A previous owner may have died counted as waiting.
          views(region).lines.storeRoomWaits(line, 0)
          return { line, occurrence }
        }
      }
      return undefined
    }),
    (claim) => Effect.sync(() => claim !== undefined && releaseLine(region, claim.line, claim.occurrence))
  ).pipe(
    Effect.tap((claim) =>
      claim === undefined
        ? Effect.logWarning(
          `all ${area.config.listenerSlots} log listener lines are taken; waits here rely on the park bound`
        )
        : Effect.void
    ),
    Effect.map((claim): Listening => {
      if (claim === undefined) return { await: doorbell.await, watch: doorbell.watch }
      const { lines } = views(region)
      return countedWaits(doorbell, (delta) => lines.addRoomWaits(claim.line, delta))
    })
  )

/** `listening`'s fiber wait alone. */
export const listen = (
  region: CxlMemoryShape,
  area: LogArea,
  doorbell: DoorbellShape
): Effect.Effect<ListenerAwait, never, Scope.Scope> => Effect.map(listening(region, area, doorbell), (l) => l.await)

/**
 * Waits of this process's ACK trackers for broker `broker`'s batches to be ordered, counted in
 * the broker owner line's `ackWaits`: the sequencer rings it only after a round that ordered a
 * batch of that broker (or one that may move any frontier: see `ringWaiters`), not after every
 * round, so with N brokers a batch wakes one broker, not N. Same protocol as `listening`:
 * counted (a sequentially consistent add) before the doorbell re-checks the condition.
 * Undefined unless this process owns the broker slot (the owner line names this process's doorbell).
 */
export const listeningForOrdering = (
  region: CxlMemoryShape,
  area: LogArea,
  doorbell: DoorbellShape,
  broker: number
): Listening | undefined => {
  if (broker < 0 || broker >= area.config.maxBrokers) return undefined
  const owner = area.brokerOwner(broker)
  if (bellOf(region, owner) !== doorbell.offset) return undefined
  const { lines } = views(region)
  return countedWaits(doorbell, (delta) => lines.addAckWaits(owner, delta))
}

/**
 * Claims a subscriber line like `claimLine`, except a named consumer's (`durable` 2 or 3): that
 * line is the consumer's whatever its pid word says (a creator killed before it cleared its pid
 * leaves its own), so it is never taken over as a dead owner's. Returns as `claimLine` does.
 */
export const claimSubscriberLine = (
  region: CxlMemoryShape,
  line: number,
  occurrence: number,
  doorbell: number
): number => {
  region.invalidate(line, LINE_BYTES)
  if (lineTaken(region, line) && views(region).subscribers.durable(line) >= 2) return -1
  return claimLine(region, line, occurrence, doorbell)
}

/**
 * Durable subscribers: a subscriber line of the topic, claimed like a participant line, whose
 * cursor (the next global seq it reads) holds retention. Returns the claim, or undefined when
 * every line of the topic is taken.
 */
export const claimSubscriber = (
  region: CxlMemoryShape,
  area: SubscriberArea,
  bell: number,
  topic: number,
  cursor: number
): { readonly line: number; readonly occurrence: number } | undefined => {
  const occurrence = newOccurrence()
  for (let s = 0; s < area.config.subscriberSlots; s++) {
    const line = area.subscriber(topic, s)
    if (claimSubscriberLine(region, line, occurrence, bell) !== 0) continue
    moveSubscriber(region, line, cursor)
    return { line, occurrence }
  }
  return undefined
}

/** Moves a durable subscriber's cursor; the sequentially consistent store after it is the fence `ringRoomWaiters` relies on. */
export const moveSubscriber = (region: CxlMemoryShape, line: number, cursor: number): void => {
  const { subscribers } = views(region)
  subscribers.setCursor(line, cursor)
  region.publish(line, LINE_BYTES)
  subscribers.storeDurable(line, 1)
}

export const releaseSubscriber = (region: CxlMemoryShape, line: number, occurrence: number): void => {
  views(region).subscribers.storeDurable(line, 0)
  releaseLine(region, line, occurrence)
}

/** How long a line owner's liveness is taken as known (checking costs system calls). */
const LIVENESS_MS = 200
/** Owners a liveness cache remembers before it drops those it would check again anyway: readers come and go, each with a pid. */
const LIVENESS_PIDS = 1024

/** `isLineOwnerAlive`, re-checked at most every LIVENESS_MS per owner (pid and start tag). */
export const livenessCache = (): (pid: number, occurrence: number) => boolean => {
  const seen = new Map<number, { alive: boolean; at: number }>()
  return (pid, occurrence) => {
    // pid < 2^22 and 16 bits of start tag: one exact key below 2^53.
    const owner = pid * 2 ** 16 + (occurrence >>> CLAIM_COUNT_BITS)
    const now = performance.now()
    const cached = seen.get(owner)
    if (cached !== undefined && now - cached.at < LIVENESS_MS) return cached.alive
    const alive = isLineOwnerAlive(pid, occurrence)
    if (cached === undefined && seen.size >= LIVENESS_PIDS) {
      for (const [old, entry] of seen) if (now - entry.at >= LIVENESS_MS) seen.delete(old)
      // Still many checked within the window: start over rather than sweep again at the next new pid.
      if (seen.size >= LIVENESS_PIDS / 2) seen.clear()
    }
    seen.set(owner, { alive, at: now })
    return alive
  }
}

/**
 * The lowest cursor of the topic's live durable subscribers and its named consumers, live members
 * or not (Infinity if none): retention keeps everything from it on.
 */
export const lowestDurableCursor = (
  region: CxlMemoryShape,
  area: SubscriberArea,
  topic: number,
  alive: (pid: number, occurrence: number) => boolean
): number => {
  const { lines, subscribers } = views(region)
  let lowest = Infinity
  for (let s = 0; s < area.config.subscriberSlots; s++) {
    const at = area.subscriber(topic, s)
    region.invalidate(at, LINE_BYTES)
    const { occurrence, pid } = lines.claim(at)
    if (occurrence === 0) continue
    const durable = subscribers.durable(at)
    if (durable !== 2 && (durable !== 1 || !alive(pid, occurrence))) continue
    lowest = Math.min(lowest, subscribers.cursor(at))
  }
  return lowest
}
