/**
 * A new group's spec, checked before anything is created: its numbers within what a group's
 * object can hold, and where on its topic it starts — an offset or a time resolved against what
 * the topic holds now (a position outside it is refused, naming the window), with the topic's
 * generation, so a group always belongs to the one topic it was created on.
 */
import { Effect } from "effect"
import { nameList, type NamesOf, unknownNames } from "../../OptionNames.js"
import {
  type ConsumerGroupsShape,
  type GroupInfo,
  type GroupMade,
  GroupMembersFull,
  GroupNotFound,
  GroupPendingFull,
  type GroupSpec,
  InvalidGroupSpec
} from "../../services/groups/ConsumerGroups.js"
import { GROUP_LIMITS } from "../../services/groups/GroupSettings.js"
import type { LogReaderShape } from "../../services/log/LogReader.js"
import type { TopicInfo, TopicNotFound } from "../../services/log/Topics.js"
import { InvalidObjectName, nameNotText } from "../../services/region/Directory.js"
import { MAX_MEMBER_SLOTS, MAX_PENDING_SLOTS } from "./GroupLayout.js"

const U32 = GROUP_LIMITS.u32

const outside = (value: number | undefined, min: number, max: number) =>
  value !== undefined && (!Number.isInteger(value) || value < min || value > max)

/** The fields a spec may have: any other is a caller's mistake (`ackWait` for `ackWaitMs`), not left out in silence. */
const SPEC_FIELDS: NamesOf<GroupSpec> = {
  name: true,
  topic: true,
  byKey: true,
  ackWaitMs: true,
  maxDeliver: true,
  deadLetterTopic: true,
  start: true,
  memberSlots: true,
  pendingSlots: true,
  holdRetention: true
}

/** Why the spec cannot be a group, or undefined. */
export const groupSpecProblem = (spec: GroupSpec): string | undefined => {
  const unknown = unknownNames(spec, SPEC_FIELDS)
  if (unknown.length > 0) {
    return `a group's spec has no field ${unknown.join(", ")} (its fields: ${nameList(SPEC_FIELDS)})`
  }
  if (typeof spec.topic !== "string" || spec.topic.length === 0) return "it needs a topic"
  if (spec.deadLetterTopic === spec.topic) return "its dead-letter topic cannot be its own topic"
  if (outside(spec.ackWaitMs, 1, U32)) return `ackWaitMs must be a whole number from 1 to ${U32}, not ${spec.ackWaitMs}`
  if (outside(spec.maxDeliver, 0, U32)) return `maxDeliver must be a whole number from 0 (no limit) to ${U32}`
  if (outside(spec.memberSlots, 1, MAX_MEMBER_SLOTS)) return `memberSlots must be from 1 to ${MAX_MEMBER_SLOTS}`
  if (outside(spec.pendingSlots, 1, MAX_PENDING_SLOTS)) return `pendingSlots must be from 1 to ${MAX_PENDING_SLOTS}`
  if (spec.holdRetention !== undefined && typeof spec.holdRetention !== "boolean") {
    return `holdRetention must be true or false, not ${JSON.stringify(spec.holdRetention)}`
  }
  if (spec.start !== undefined && !isStart(spec.start)) {
    return `start must be "earliest", "latest", { offset: N } or { time: MS }, not ${JSON.stringify(spec.start)}`
  }
  return undefined
}

/**
 * A group's name given as something other than a string (a JavaScript caller's `name: 5`): as the
 * create's name, a name no object can have (`nameRefusal`); looked up, no group (`notAGroupName`).
 * Checked before anything else reads it: the checks of a name's bytes, and the errors' Schemas,
 * take only strings.
 */
export const nameRefusal = (name: unknown): InvalidObjectName | undefined =>
  typeof name === "string"
    ? undefined
    : new InvalidObjectName({ name: String(name), reason: nameNotText(name)! })

export const notAGroupName = (name: unknown): GroupNotFound | undefined =>
  typeof name === "string" ? undefined : new GroupNotFound({ group: String(name) })

/** `lookup` of the group `name`, or `GroupNotFound` without it when the name is not a string. */
export const lookedUp = <A, E>(
  name: string,
  lookup: () => Effect.Effect<A, E>
): Effect.Effect<A, E | GroupNotFound> => {
  const refused = notAGroupName(name)
  return refused === undefined ? lookup() : Effect.fail(refused)
}

/** The fields of a spec an existing group is held to when a caller names them: what it was made with. */
const COMPARED = [
  "byKey",
  "ackWaitMs",
  "maxDeliver",
  "deadLetterTopic",
  "memberSlots",
  "pendingSlots",
  "holdRetention"
] as const

/**
 * Why `made` is not the group `spec` asks for (a caller that would create it finds it made
 * already), or undefined: its topic, and every other field `spec` names (a start was where the
 * group began, not something it still is: not compared).
 */
export const specMismatch = (spec: Omit<GroupSpec, "name">, made: GroupMade): string | undefined => {
  if (made.topic !== spec.topic) return `it reads topic ${made.topic}, not ${spec.topic} (delete it to read another)`
  const differ = COMPARED.filter((field) => spec[field] !== undefined && spec[field] !== made[field])
  if (differ.length === 0) return undefined
  const shown = (value: unknown) => (value === undefined ? "none" : JSON.stringify(value))
  return `it exists, made with ${differ.map((f) => `${f} ${shown(made[f])}`).join(", ")}, not ${
    differ.map((f) => `${f} ${shown(spec[f])}`).join(", ")
  } (delete it and create it again to change them)`
}

/** A group's start as a JavaScript caller may have given it: one of the four. */
const isStart = (start: unknown): boolean => {
  if (start === "earliest" || start === "latest") return true
  if (typeof start !== "object" || start === null) return false
  const keys = Object.keys(start)
  const value = (start as Record<string, unknown>)[keys[0] ?? ""]
  return keys.length === 1 && (keys[0] === "offset" || keys[0] === "time") && typeof value === "number" &&
    Number.isSafeInteger(value) && value >= 0
}

/** The most messages a member may hold at once (`maxInFlight`): what the wire carries, far past any pending table. */
export const MAX_IN_FLIGHT = GROUP_LIMITS.maxInFlight

/** A member's `maxInFlight` that cannot be (local and remote members alike), or undefined. */
export const joinOptionsProblem = (group: string, maxInFlight: number | undefined): InvalidGroupSpec | undefined =>
  outside(maxInFlight, 1, MAX_IN_FLIGHT)
    ? new InvalidGroupSpec({
      group,
      reason: `maxInFlight ${String(maxInFlight)} must be a whole number from 1 to ${MAX_IN_FLIGHT}`
    })
    : undefined

/** Fails when a member's `maxInFlight` cannot be. */
export const refuseJoin = (group: string, maxInFlight: number | undefined): Effect.Effect<void, InvalidGroupSpec> => {
  const problem = joinOptionsProblem(group, maxInFlight)
  return problem === undefined ? Effect.void : Effect.fail(problem)
}

/**
 * Whether a member holding `maxInFlight` (undefined: the default, not known here) could join
 * `group` as it is now: the same bounds the join itself checks (it has the last word: the group
 * may change in between), so a member that cannot join is told at its open, not at its first read.
 */
export const admissionRefusal = (
  group: GroupInfo,
  maxInFlight: number | undefined
): GroupMembersFull | GroupPendingFull | undefined => {
  if (group.members.length >= group.memberSlots) {
    return new GroupMembersFull({ group: group.name, slots: group.memberSlots })
  }
  if (maxInFlight === undefined) return undefined
  const inFlight = group.members.reduce((sum, member) => sum + member.maxInFlight, maxInFlight)
  return inFlight > group.pendingSlots
    ? new GroupPendingFull({ group: group.name, slots: group.pendingSlots, inFlight })
    : undefined
}

/**
 * The group a member with `maxInFlight` is about to join, made from `create.make` when there is
 * none, and held to what the caller asked of it (`create.asked`); fails as the join would when
 * the member's window cannot be or the group has no room for it. A refused join leaves no group
 * behind, holding its topic's retention and one of the topic's subscriber lines for a member that
 * never came: a window past the pending slots the spec names is refused before the group is made,
 * and a group this call made for a member that could never join it, even alone (a window past the
 * default pending slots), is deleted again.
 */
export const groupToJoin = (
  groups: ConsumerGroupsShape,
  name: string,
  create: { readonly make: Omit<GroupSpec, "name">; readonly asked: Omit<GroupSpec, "name"> } | undefined,
  maxInFlight: number | undefined
) =>
  Effect.gen(function*() {
    // Before anything is made: a window that cannot be needs no group to be refused.
    yield* refuseJoin(name, maxInFlight)
    const described = groups.describe(name)
    let made = false
    const make = (spec: Omit<GroupSpec, "name">) =>
      Effect.gen(function*() {
        const slots = spec.pendingSlots
        if (slots !== undefined && maxInFlight !== undefined && maxInFlight > slots) {
          return yield* new GroupPendingFull({ group: name, slots, inFlight: maxInFlight })
        }
        return yield* groups.create({ ...spec, name }).pipe(
          Effect.tap(() => void (made = true)),
          Effect.catchTag("GroupExists", () => described)
        )
      })
    const info = create === undefined
      ? yield* described
      : yield* described.pipe(Effect.catchTag("GroupNotFound", () => make(create.make)))
    // An existing group made otherwise (another topic, other settings): joining it is not what the caller asked for.
    const mismatch = create === undefined ? undefined : specMismatch(create.asked, info)
    if (mismatch !== undefined) return yield* new InvalidGroupSpec({ group: name, reason: mismatch })
    const refused = admissionRefusal(info, maxInFlight)
    if (refused === undefined) return info
    // Only a group no member could share with this one: another that joined it meanwhile keeps it.
    // The refusal is what the caller is told, whether or not the delete could be made.
    if (made && admissionRefusal({ ...info, members: [] }, maxInFlight) !== undefined) {
      yield* Effect.ignore(groups.delete(name))
    }
    return yield* refused
  })

/** Where a new group starts on its topic: the offset and the batch holding it, and the topic as it is. */
export interface GroupStartPoint {
  readonly offset: number
  readonly globalSeq: number
  readonly topic: TopicInfo
}

/** Where `spec`'s group starts on its topic, and which generation of the topic that is. */
export const startOf = (
  reader: LogReaderShape,
  spec: GroupSpec
): Effect.Effect<GroupStartPoint, InvalidGroupSpec | TopicNotFound> => {
  const start = spec.start ?? "earliest"
  const options = typeof start === "string"
    ? { from: start }
    : "offset" in start
    ? { from: start.offset }
    : { fromTime: start.time }
  return Effect.scoped(
    Effect.map(reader.subscribe(spec.topic, options), (cursor) => ({
      offset: cursor.position(),
      globalSeq: cursor.nextBatch(),
      topic: cursor.topic
    }))
  ).pipe(
    Effect.catchTags({
      LogOutOfRange: (e) => Effect.fail(new InvalidGroupSpec({ group: spec.name, reason: `its start: ${e.message}` })),
      SubscriberTableFull: (e) => Effect.die(e)
    })
  )
}
