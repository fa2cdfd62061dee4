/**
 * Delivering messages again: a member's look at the pending table finds the entries it may take
 * over — a dead member's (at once, not after ackWait), those held past their deadline, and nak'd
 * ones now due; byKey, only those of its own buckets, so a key's messages stay with one member —
 * and frees a dead member's entries that never held a message. It takes them over oldest offset
 * first, before handing out anything new, reads each message again (each batch once for the
 * messages of it taken over together), and delivers it with its delivery count one higher; past
 * `maxDeliver` it writes it to the dead letters instead.
 */
import { Effect } from "effect"
import type { Delivery } from "../../services/groups/ConsumerGroups.js"
import type { ClaimVerdict } from "./GroupClaims.js"
import { makeDelivery } from "./GroupDelivery.js"
import type { MemberState, Redeliverable } from "./GroupMemberState.js"
import { hold, room } from "./GroupMemberState.js"
import type { Claiming } from "./GroupPending.js"
import type { BatchCopy, ReadError } from "./GroupReader.js"

/** May `m` take over an entry of `lane` (byKey, a key bucket: only its owner may)? */
const mayTake = (m: MemberState, lane: number): boolean =>
  !m.group.config.byKey || m.owned.has(lane) || m.draining.has(lane)

/**
 * Whether a dead member's claiming entry was handed out: byKey, its bucket's one owner raised the
 * bucket's frontier past it; without keys, its claim won (GroupClaims.ts).
 */
const handedOut = (m: MemberState) => (claim: Claiming): ClaimVerdict =>
  m.group.config.byKey
    ? claim.offset < m.group.buckets.frontier(claim.lane) ? "handed-out" : "not-handed-out"
    : m.group.claims.judge(claim.lane, claim.owner)

/**
 * Looks at every pending entry: frees what a dead member left unclaimed, and finds what `m` may
 * deliver again. Resolves to how many entries were in use (0: nothing of the group's is in flight).
 */
export const lookAtPending = (m: MemberState, nowMs: number): number => {
  const { pending, config } = m.group
  const backlog: Array<Redeliverable> = []
  let nextDueMs = Infinity
  let inUse = 0
  const judge = handedOut(m)
  for (let slot = 0; slot < config.pendingSlots; slot++) {
    if (!pending.inUse(slot)) continue
    inUse++
    const verdict = pending.inspect(slot, nowMs, judge)
    if (verdict.kind === "none") continue
    if (verdict.kind === "release") {
      pending.release(slot, verdict.observed)
    } else if (mayTake(m, pending.lane(slot))) {
      if (verdict.kind === "later") nextDueMs = Math.min(nextDueMs, verdict.dueMs)
      else backlog.push({ slot, observed: verdict.observed, offset: pending.offset(slot), why: verdict.why })
    }
  }
  m.backlog = backlog.sort((a, b) => a.offset - b.offset)
  m.nextDueMs = nextDueMs
  return inUse
}

/** A message taken over past `maxDeliver`: to the dead letters (kept pending, due again after ackWait, if that fails). */
const retire = (m: MemberState, slot: number, control: bigint, offset: number, deliveries: number, nowMs: number) =>
  Effect.gen(function*() {
    const { pending, config, name } = m.group
    const message = yield* m.reader.readAt(offset)
    const written = yield* Effect.either(
      m.deadLetter(message, `max-deliver: not acked after ${deliveries} deliveries`, deliveries)
    )
    if (written._tag === "Left") {
      yield* Effect.logWarning(`consumer group ${name}: ${written.left.message}`)
      pending.reschedule(slot, control, nowMs + config.ackWaitMs, "waiting")
      return
    }
    if (pending.settle(slot, control)) m.group.count("deadLetters")
  })

/** Takes over what the last look found, oldest first, while `m` has room; the deliveries go to `out`. */
export const redeliver = (
  m: MemberState,
  nowMs: number,
  out: Array<Delivery>
): Effect.Effect<void, ReadError> =>
  Effect.gen(function*() {
    const { pending, config } = m.group
    // The backlog is in offset order: a dead member's messages mostly share batches, each read once.
    let batch: BatchCopy | undefined
    while (m.backlog.length > 0 && room(m) > 0) {
      const found = m.backlog.shift()!
      const taken = pending.take(found.slot, found.observed, m.ref, nowMs, nowMs + config.ackWaitMs)
      if (taken === undefined) continue
      // A message given back unseen (`giveBack`) is delivered for the first time now: no redelivery.
      if (taken.deliveries > 1) m.group.count("redeliveries")
      if (found.why === "expired") m.group.count("expired")
      if (config.maxDeliver > 0 && taken.deliveries > config.maxDeliver) {
        yield* retire(m, found.slot, taken.control, taken.offset, taken.deliveries - 1, nowMs)
        continue
      }
      if (batch === undefined || taken.offset < batch.start || taken.offset >= batch.end) {
        batch = yield* m.reader.batchAt(taken.offset)
      }
      const message = batch.message(taken.offset - batch.start)
      hold(m, taken.lane)
      m.group.members.countDelivered(m.ref, 1)
      out.push(makeDelivery(m.settling, { slot: found.slot, ...taken }, message))
    }
  })
