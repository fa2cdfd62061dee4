/** The flags of a new consumer group's spec, shared by `cxlog groups create` and `cxlog consume` (which creates a missing group). */
import type { GroupSpec, GroupStart } from "../../services/groups/ConsumerGroups.js"
import { GROUP_SETTINGS } from "../../services/groups/GroupSettings.js"
import * as Cli from "../cli/CliKit.js"
import { parsePosition } from "./SharedFlags.js"

const { ackWaitMs, maxDeliver, memberSlots, pendingSlots } = GROUP_SETTINGS.settings

export const groupSpecFlags = {
  byKey: Cli.toggle("by-key", {
    description:
      "messages of one key go to one member while it lives, in offset order (the key's bucket moves only once settled)"
  }),
  ackWaitMs: Cli.fromSetting("ack-wait-ms", ackWaitMs),
  maxDeliver: Cli.fromSetting("max-deliver", maxDeliver),
  deadLetterTopic: Cli.optionalText("dead-letter-topic", {
    placeholder: "TOPIC",
    shown: "none: counted and dropped",
    description: "where terminated messages and those delivered --max-deliver times go, with headers saying why"
  }),
  start: Cli.custom<GroupStart | undefined>("start", "earliest|latest|OFFSET|TIME", parsePosition, {
    default: undefined,
    shown: "earliest",
    description: "where a new group starts on its topic (TIME: an ISO time, or an age such as 15m: that long ago)"
  }),
  memberSlots: Cli.fromSetting("member-slots", memberSlots),
  pendingSlots: Cli.fromSetting("pending-slots", pendingSlots),
  noHold: Cli.toggle("no-hold", {
    description:
      "the group holds none of its topic's retention: publishers never wait for it, and what it has not settled goes when the topic's memory needs the room"
  })
}

/** The spec the flags give a group `name` on `topic`. */
export const groupSpecOf = (
  name: string,
  topic: string,
  o: {
    readonly byKey: boolean
    readonly ackWaitMs: number
    readonly maxDeliver: number
    readonly deadLetterTopic: string | undefined
    readonly start: GroupStart | undefined
    readonly memberSlots: number
    readonly pendingSlots: number
    readonly noHold: boolean
  }
): GroupSpec => ({
  name,
  topic,
  byKey: o.byKey,
  ackWaitMs: o.ackWaitMs,
  maxDeliver: o.maxDeliver,
  memberSlots: o.memberSlots,
  pendingSlots: o.pendingSlots,
  ...(o.noHold ? { holdRetention: false } : {}),
  ...(o.deadLetterTopic === undefined ? {} : { deadLetterTopic: o.deadLetterTopic }),
  ...(o.start === undefined ? {} : { start: o.start })
})

/**
 * Of a spec the flags gave, what the user asked for: the fields whose flags were set away from
 * their defaults (an existing group is held to these, not to defaults nobody named).
 */
export const askedOf = (spec: GroupSpec): Omit<GroupSpec, "name"> => ({
  topic: spec.topic,
  ...(spec.byKey === true ? { byKey: true } : {}),
  ...(spec.ackWaitMs !== ackWaitMs.default ? { ackWaitMs: spec.ackWaitMs } : {}),
  ...(spec.maxDeliver !== maxDeliver.default ? { maxDeliver: spec.maxDeliver } : {}),
  ...(spec.memberSlots !== memberSlots.default ? { memberSlots: spec.memberSlots } : {}),
  ...(spec.pendingSlots !== pendingSlots.default ? { pendingSlots: spec.pendingSlots } : {}),
  ...(spec.holdRetention === undefined ? {} : { holdRetention: spec.holdRetention }),
  ...(spec.deadLetterTopic === undefined ? {} : { deadLetterTopic: spec.deadLetterTopic })
})
