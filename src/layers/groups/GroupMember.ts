/**
 * A member of a consumer group, from join to leave: it claims a line of the member table, then
 * each pull of its stream runs its loop until it has something to deliver —
 * 1. every `checkEveryMs` (QUIET_LOOK_MS while the group is quiet), a look: the group still
 *    there (and, with no room to read, its topic), dead members' lines freed (byKey: their buckets handed back), its share of the keys
 *    (byKey), and the pending entries it may take over;
 * 2. what the look found to deliver again, oldest first, while it has room;
 * 3. new messages, while it has room and nothing is left to deliver again;
 * 4. else a bounded wait: for a settled delivery when it has no room, else for the topic to grow
 *    or the next entry to fall due, at most until the next look.
 * Between wakes it lets its process's event loop turn at least every TURN_EVERY_MS.
 * Leaving — the stream ends, fails or is interrupted — hands its buckets back (byKey) and frees its
 * line, so what it held goes to the others on their next look.
 */
import { Clock, Effect, Stream } from "effect"
import {
  type Delivery,
  GroupDeleted,
  type GroupJoinError,
  GroupMembersFull,
  GroupPendingFull,
  type GroupTopicGone
} from "../../services/groups/ConsumerGroups.js"
import type { ConsumerRules } from "../../services/log/Consumers.js"
import type { LogReaderShape } from "../../services/log/LogReader.js"
import type { DirectoryShape } from "../../services/region/Directory.js"
import { chunkLoop } from "./ChunkLoop.js"
import type { DeadLetterWriter } from "./GroupDeadLetters.js"
import { dispatch, type Dispatched } from "./GroupDispatch.js"
import { holdKeeper, releaseHold } from "./GroupHold.js"
import { handBackDead, shareKeys } from "./GroupKeyShare.js"
import type { MemberState } from "./GroupMemberState.js"
import { makeMemberState, type MemberOptions, pace, room, scanPosition, stir } from "./GroupMemberState.js"
import type { GroupObject } from "./GroupObject.js"
import { GroupReader, pause } from "./GroupReader.js"
import { lookAtPending, redeliver } from "./GroupRedelivery.js"

/** The look (step 1). */
const look = (m: MemberState, directory: DirectoryShape, nowMs: number) =>
  Effect.suspend((): Effect.Effect<void, GroupDeleted | GroupTopicGone> => {
    m.lastLook = performance.now()
    const { members, config, entry, name } = m.group
    if (!directory.isCurrent(entry)) return Effect.fail(new GroupDeleted({ group: name }))
    const dead = members.deadSlots()
    for (const slot of dead) {
      if (config.byKey) handBackDead(m.group, members.refAt(slot), members.scanned(slot))
      members.free(slot)
    }
    if (config.byKey) shareKeys(m)
    pace(m, lookAtPending(m, nowMs), dead.length)
    // A member with no room reads nothing, where a deleted topic would fail its reads: the look tells it then.
    return room(m) > 0 ? Effect.void : m.reader.checkTopic
  })

/** Waits for room: until a delivery is settled, at most until the next look. */
const awaitRoom = (m: MemberState): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), m.checkEveryMs)
    m.wake = () => {
      clearTimeout(timer)
      resume(Effect.void)
    }
    return Effect.sync(() => {
      clearTimeout(timer)
      m.wake = undefined
    })
  })

/** Step 4: nothing to deliver now. */
const idle = (m: MemberState, dispatched: Dispatched, nowMs: number) => {
  const untilLook = Math.max(1, m.lookEveryMs - (performance.now() - m.lastLook))
  if (room(m) <= 0) return awaitRoom(m)
  const untilDue = m.nextDueMs === Infinity ? untilLook : Math.max(1, m.nextDueMs - nowMs)
  const bound = Math.min(untilLook, untilDue)
  // Blocked with room (no pending entry free): the topic growing changes nothing, only time does.
  if (dispatched === "blocked") return pause(bound)
  return Effect.map(m.reader.awaitMore(bound), (more) => {
    if (more) stir(m)
  })
}

/**
 * The longest a member hands out messages without letting its process's event loop turn. With a
 * backlog it never waits, and Effect runs it on microtasks: without turns, the process's timers
 * and I/O (its heartbeat, its IPC, a server beside it) would wait until the backlog is gone.
 */
const TURN_EVERY_MS = 10

/** One turn of the event loop: `setImmediate` runs after due timers and pending I/O. */
const turn: Effect.Effect<void> = Effect.async<void>((resume) => {
  const immediate = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(immediate))
})

/**
 * A wake's deliveries in an array of their own, `out` emptied. `out` is held by the wake's
 * generators (this loop's and dispatch's), and something of theirs outlives the wake in V8's old
 * generation: handed out as it was, every delivery it held outlived the young-generation
 * collections until the next full one. Emptied, the members moved 7.3 % of what they allocated to
 * the old generation against 18.2 %, and ran 8 full collections against 43 (`--trace-gc-nvp` of
 * the members of `bench --type group --members 4 --local --messages 400000`; docs/consumers.md).
 */
const handOver = (out: Array<Delivery>): Array<Delivery> => {
  const taken = out.slice()
  out.length = 0
  return taken
}

/** The next deliveries (at least one), running the member's loop. */
const nextDeliveries = (m: MemberState, directory: DirectoryShape) =>
  Effect.gen(function*() {
    if (performance.now() - m.lastTurn >= TURN_EVERY_MS) {
      yield* turn
      m.lastTurn = performance.now()
    }
    for (;;) {
      const nowMs = yield* Clock.currentTimeMillis
      if (performance.now() - m.lastLook >= m.lookEveryMs) {
        yield* look(m, directory, nowMs)
        if (m.backlog.length > 0) m.nextDueMs = nowMs
      }
      const out: Array<Delivery> = []
      if (m.backlog.length > 0) yield* redeliver(m, nowMs, out)
      const dispatched = m.backlog.length === 0 && room(m) > 0 ? yield* dispatch(m, nowMs, out) : "blocked"
      if (out.length > 0) {
        stir(m)
        return handOver(out)
      }
      // Taken over by others meanwhile: what is left of the backlog is looked at again next time.
      if (m.backlog.length > 0 && room(m) > 0) m.backlog = []
      yield* idle(m, dispatched, nowMs)
    }
  })

/** Leaving: byKey buckets handed back (each frontier raised to where it scanned), then the line freed. */
const leave = (m: MemberState) =>
  Effect.zipRight(
    Effect.sync(() => {
      const { buckets, members, config } = m.group
      if (config.byKey) {
        const scanned = scanPosition(m)
        for (const bucket of [...m.owned, ...m.draining]) buckets.release(bucket, m.ref, scanned)
      }
      members.leave(m.ref)
    }),
    m.reader.close
  )

/**
 * Claims a member line for this process, when the pending table has room for one more member
 * holding `maxInFlight` (byKey: a dead member's line is taken after its buckets were handed back).
 */
const admit = (
  group: GroupObject,
  maxInFlight: number,
  nowMs: number
): Effect.Effect<number, GroupPendingFull | GroupMembersFull> =>
  Effect.suspend((): Effect.Effect<number, GroupPendingFull | GroupMembersFull> => {
    const { members, config, name } = group
    const inFlight = members.live().reduce((sum, member) => sum + member.maxInFlight, maxInFlight)
    if (inFlight > config.pendingSlots) {
      return Effect.fail(new GroupPendingFull({ group: name, slots: config.pendingSlots, inFlight }))
    }
    const ref = members.join(maxInFlight, nowMs, (slot) => {
      if (config.byKey) handBackDead(group, members.refAt(slot), members.scanned(slot))
    })
    return ref === undefined
      ? Effect.fail(new GroupMembersFull({ group: name, slots: config.memberSlots }))
      : Effect.succeed(ref)
  })

/** Joins `group` as a member of this process, for as long as the stream runs. */
export const joinGroup = (
  group: GroupObject,
  directory: DirectoryShape,
  reader: LogReaderShape,
  consumers: ConsumerRules,
  deadLetter: DeadLetterWriter,
  options: MemberOptions
): Stream.Stream<Delivery, GroupJoinError> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const { config, name } = group
    yield* directory.hold(group.entry).pipe(
      Effect.catchTag("ObjectDeleted", () => Effect.fail(new GroupDeleted({ group: name })))
    )
    // Run after the hold's lease is let go (finalizers run last first): a group deleted meanwhile leaves no hold behind.
    yield* Effect.addFinalizer(() =>
      directory.isCurrent(group.entry) ? Effect.void : releaseHold(consumers, config.topic, group.entry)
    )
    /** The member, once it joined. */
    let member: MemberState | undefined
    // The group's hold on its topic, kept where the group stands as often as the member looks
    // (`checkEveryMs`; QUIET_LOOK_MS while the group is quiet, when the hold cannot move) whatever
    // the member's own pace (a handler busy for minutes would leave it behind, and publishers waiting).
    if (config.holdRetention) {
      const hold = holdKeeper(consumers, reader, group, () => directory.isCurrent(group.entry), yield* Effect.scope)
      yield* hold.keep
      yield* Effect.forkScoped(Effect.forever(
        Effect.suspend(() => Effect.zipRight(pause(member?.lookEveryMs ?? options.checkEveryMs), hold.keep))
      ))
    }
    const groupReader = new GroupReader(reader, name, config.topic, config.topicGeneration)
    yield* Effect.addFinalizer(() => groupReader.close)
    const nowMs = yield* Clock.currentTimeMillis
    const m = yield* Effect.acquireRelease(
      Effect.map(admit(group, options.maxInFlight, nowMs), (ref) =>
        makeMemberState(group, ref, groupReader, deadLetter, options)),
      leave
    )
    member = m
    yield* look(m, directory, nowMs)
    // byKey, the reader opens where the buckets it took start (GroupKeyShare.ts); without keys, at the frontier.
    if (!config.byKey) {
      yield* groupReader.open(group.frontier())
    }
    // Each wake's deliveries are one chunk.
    return chunkLoop(nextDeliveries(m, directory))
  }))
