/**
 * A delivery: one message a member was handed, with the entry that holds it in the group's
 * pending table and the control word that entry had when this member got it. Settling it is a
 * compare-and-swap against that word, so a delivery held past its ackWait and taken over by
 * another member settles nothing (`false`): the message is the other member's now.
 */
import { Clock, Effect } from "effect"
import type { DeadLetterFailed, Delivery } from "../../services/groups/ConsumerGroups.js"
import type { DeadLetterWriter } from "./GroupDeadLetters.js"
import type { Counter, GroupConfig } from "./GroupLayout.js"
import type { GroupMembers } from "./GroupMembers.js"
import type { GroupPending } from "./GroupPending.js"
import type { GroupMessage } from "./GroupReader.js"

/** What a member's deliveries settle through. */
export interface Settling {
  readonly group: string
  readonly config: GroupConfig
  readonly pending: GroupPending
  readonly members: GroupMembers
  readonly ref: number
  readonly count: (which: Counter, n?: number) => void
  readonly deadLetter: DeadLetterWriter
  /** A delivery of `lane` is no longer held by this member (settled, or found taken over). */
  readonly done: (lane: number) => void
}

/** Where a delivery's message lies in the pending table. */
export interface Held {
  readonly slot: number
  readonly control: bigint
  readonly lane: number
  readonly deliveries: number
}

export const makeDelivery = (s: Settling, held: Held, message: GroupMessage): Delivery => {
  const { ackWaitMs, maxDeliver } = s.config
  let control = held.control
  let finished = false
  const finish = (settled: boolean): boolean => {
    if (!finished) {
      finished = true
      s.done(held.lane)
    }
    return settled
  }
  const reschedule = (delayMs: number, state: "delivered" | "waiting") =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      if (finished) return false
      const next = s.pending.reschedule(held.slot, control, now + delayMs, state)
      if (next === undefined) return finish(false)
      control = next
      return true
    })
  /** The entry is held a full ackWait while the dead letter is written, then freed. */
  const deadLetter = (reason: string): Effect.Effect<boolean, DeadLetterFailed> =>
    Effect.flatMap(
      reschedule(ackWaitMs, "delivered"),
      (kept) =>
        !kept ? Effect.succeed(false) : Effect.map(s.deadLetter(message, reason, held.deliveries), () => {
          const settled = s.pending.settle(held.slot, control)
          if (settled) s.count("deadLetters")
          return finish(settled)
        })
    )
  return {
    group: s.group,
    topic: s.config.topic,
    offset: message.offset,
    timestamp: message.timestamp,
    key: message.key,
    headers: message.headers,
    value: message.value,
    deliveryCount: held.deliveries,
    ack: Effect.sync(() => {
      if (finished) return false
      const settled = s.pending.settle(held.slot, control)
      if (settled) {
        s.members.countAcked(s.ref)
        s.count("acked")
      }
      return finish(settled)
    }),
    nak: (delayMs = 0) =>
      maxDeliver > 0 && held.deliveries >= maxDeliver
        ? deadLetter(`max-deliver: nak'd after ${held.deliveries} deliveries`)
        : Effect.map(reschedule(Math.max(0, delayMs), "waiting"), (parked) => finish(parked)),
    term: (reason = "terminated") => deadLetter(`term: ${reason}`),
    inProgress: reschedule(ackWaitMs, "delivered")
  }
}
