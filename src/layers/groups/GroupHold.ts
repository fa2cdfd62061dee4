/**
 * A consumer group's hold on its topic's retention: a named consumer of the topic of cxlog's own
 * (`$group:SLOT.GENERATION`, after the group's object), made with the group at its start. One
 * member at a time (the consumer's member) keeps it at the group's low water (`lowWater`: its
 * frontier, or its oldest message not settled) every CXLOG_GROUP_CHECK_MS, from a timer of its
 * own; a member that finds it without a live member takes it. So a topic that makes its publishers
 * wait when its memory is full (discard `new`, the default) keeps what the group has not settled,
 * as it does for a named consumer, instead of losing it to retention. A group made with
 * `holdRetention: false` has none.
 *
 * The bound is a named consumer's (CXLOG_CONSUMER_HOLD_MS): a hold that kept a writer's appends
 * waiting that long is cut off, and the topic's oldest messages go again; members that fall
 * behind it get `GroupBehindRetention`, naming the offsets. A cut-off hold is taken again once the
 * group's low water passes where the topic ended when the cut was seen (the group caught up).
 *
 * A topic that discards old messages (`discard: "old"`) holds nothing for anyone: its groups make
 * no hold. A group's delete removes the holds of its topic whose group is gone (`sweepHolds`): its
 * own, and any a deleter killed between the two steps left; so does the next create. A member that
 * held the hold while its group was deleted removes it as it leaves (`releaseHold`).
 */
import { Effect, Option, Scope } from "effect"
import { InvalidGroupSpec } from "../../services/groups/ConsumerGroups.js"
import { type ConsumerLease, type ConsumerRules, OWN_CONSUMER_PREFIX } from "../../services/log/Consumers.js"
import type { LogReaderShape } from "../../services/log/LogReader.js"
import type { TopicInfo } from "../../services/log/Topics.js"
import type { DirectoryEntry, DirectoryShape } from "../../services/region/Directory.js"
import type { GroupObject } from "./GroupObject.js"
import type { GroupStartPoint } from "./GroupSpecs.js"
import { lowWater } from "./GroupStatus.js"

const HOLD_PREFIX = `${OWN_CONSUMER_PREFIX}group:`

/** The hold's consumer name: its group's object, this very one (slot and generation fit a consumer name's 24 bytes). */
export const holdName = (entry: Pick<DirectoryEntry, "slot" | "generation">): string =>
  `${HOLD_PREFIX}${entry.slot}.${entry.generation}`

/** Whether a group on `topic` holds its retention: not where old messages go anyway. */
export const holdsRetention = (topic: TopicInfo): boolean => topic.retention?.discard !== "old"

/**
 * The batch holding `offset` in the topic the group was made on, where the group holds it; none
 * when the log no longer holds it, the topic is another now, or it discards old messages.
 */
const batchOf = (reader: LogReaderShape, group: GroupObject, offset: number) =>
  Effect.scoped(
    Effect.map(
      reader.subscribe(group.config.topic, { from: offset, regionOnly: true }),
      (cursor) =>
        cursor.topic.generation === group.config.topicGeneration && holdsRetention(cursor.topic)
          ? Option.some(cursor.nextBatch())
          : Option.none()
    )
  ).pipe(Effect.orElseSucceed(() => Option.none<number>()))

/**
 * Makes the new group's hold at its start (the creator its member for as long as this runs). A
 * topic without a subscriber line left for it refuses the group (`InvalidGroupSpec`, the object
 * removed by the caller); a topic deleted meanwhile leaves the group to find out itself.
 */
export const makeHold = (
  consumers: ConsumerRules,
  entry: DirectoryEntry,
  start: GroupStartPoint
): Effect.Effect<void, InvalidGroupSpec> =>
  !holdsRetention(start.topic) ? Effect.void : Effect.scoped(
    consumers.join(start.topic.name, holdName(entry), { offset: start.offset, globalSeq: start.globalSeq })
  ).pipe(
    Effect.asVoid,
    Effect.catchTags({
      ConsumerTableFull: (e) =>
        Effect.fail(
          new InvalidGroupSpec({
            group: entry.name,
            reason: `its topic ${start.topic.name} has no subscriber line left for the group's hold on its retention ` +
              `(all ${e.slots} taken by named consumers, groups and durable subscribers): ` +
              `raise CXLOG_LOG_SUBSCRIBER_SLOTS, or delete a consumer or a group of the topic`
          })
        ),
      ConsumerBusy: () => Effect.void,
      ConsumerNameInvalid: (e) => Effect.die(e),
      TopicNotFound: () => Effect.void
    })
  )

/** Removes the group's hold; a member still holding it removes it when it leaves (the group is gone). */
export const releaseHold = (consumers: ConsumerRules, topic: string, entry: DirectoryEntry): Effect.Effect<void> =>
  Effect.ignore(consumers.remove(topic, holdName(entry)))

/** Removes the holds of `topic` whose group is gone: its deleter was killed between removing the object and the hold. */
export const sweepHolds = (consumers: ConsumerRules, directory: DirectoryShape, topic: string): Effect.Effect<void> =>
  Effect.gen(function*() {
    const holds = (yield* consumers.list(topic)).filter((c) => c.name.startsWith(HOLD_PREFIX))
    if (holds.length === 0) return
    const groups = new Set((yield* directory.list("group")).map(holdName))
    for (const hold of holds) {
      if (!groups.has(hold.name) && hold.member === 0) yield* Effect.ignore(consumers.remove(topic, hold.name))
    }
  }).pipe(Effect.ignore)

/** The group's hold as its info tells it: from where it holds, and whether it was cut off; none without a hold. */
export const holdOf = (
  consumers: ConsumerRules,
  group: GroupObject
): Effect.Effect<{ readonly committed: number; readonly cutOff: boolean } | undefined> =>
  consumers.list(group.config.topic).pipe(
    Effect.map((found) => found.find((c) => c.name === holdName(group.entry))),
    Effect.orElseSucceed(() => undefined)
  )

/**
 * How often a member without the hold tries to take it: at its join, then at most this often (a
 * dead holder's hold waits that long for another member, standing where it stood meanwhile).
 */
const TAKE_EVERY_MS = 1_000

/** A member's part in its group's hold, run at each of its ticks. */
export interface HoldKeeper {
  /** Takes the hold if no live member has it (while the group is there), and moves it to the group's low water. */
  readonly keep: Effect.Effect<void>
}

/**
 * The member's part in its group's hold: the consumer's member while it is this one (its lease
 * lives in `scope`, the member's), else a try every TAKE_EVERY_MS. `current` says whether the group is
 * still there: a deleted group's hold is not made again (its members remove one as they leave).
 */
export const holdKeeper = (
  consumers: ConsumerRules,
  reader: LogReaderShape,
  group: GroupObject,
  current: () => boolean,
  scope: Scope.Scope
): HoldKeeper => {
  const name = holdName(group.entry)
  const topic = group.config.topic
  let lease: ConsumerLease | undefined
  /** Where the topic ended when the hold was seen cut off: taken again once the group passed it. */
  let resumeAt: number | undefined
  /** When this member next tries to take the hold (performance.now). */
  let nextTry = 0

  const take = (low: number) =>
    Effect.flatMap(
      batchOf(reader, group, low),
      (g) =>
        Option.isNone(g) ?
          Effect.void :
          Scope.extend(consumers.join(topic, name, { offset: low, globalSeq: g.value }), scope).pipe(
            Effect.map((taken) => {
              lease = taken
            }),
            Effect.ignore
          )
    )

  /** Moves the hold to `low`; a cut-off one is taken again first once the group passed where the topic ended at the cut. */
  const moveTo = (low: number, held: ConsumerLease) =>
    Effect.flatMap(batchOf(reader, group, low), (g) =>
      Effect.gen(function*() {
        // The log no longer holds `low` (the group is behind its retention: its members say so), or the topic is another.
        if (Option.isNone(g)) return
        if (held.cutOff()) {
          if (resumeAt === undefined) {
            resumeAt = (yield* Effect.orElseSucceed(reader.bounds(topic), () => ({ earliest: 0, end: Infinity }))).end
            return
          }
          if (low < resumeAt) return
          resumeAt = undefined
          held.resume()
        }
        // False when a writer cut the hold off meanwhile: the next tick sees it.
        held.commit(low, g.value)
      }))

  return {
    keep: Effect.suspend(() => {
      if (lease === undefined) {
        const now = performance.now()
        if (now < nextTry || !current()) return Effect.void
        nextTry = now + TAKE_EVERY_MS
        return take(lowWater(group))
      }
      const low = lowWater(group)
      return low > lease.committed() || lease.cutOff() ? moveTo(low, lease) : Effect.void
    })
  }
}
