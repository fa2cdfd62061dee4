/**
 * Handing out new messages.
 *
 * Without keys, the group's frontier is the next offset to hand out, and every member claims
 * from it: it reserves pending entries, writes in them the offsets it is about to claim (and the
 * claim's number), then wins the claim by one compare-and-swap that names it the winner, and
 * moves the frontier past them — only then are they its deliveries. A member killed anywhere in
 * between leaves entries the others judge by that swap's record (GroupClaims.ts): nothing handed
 * out is lost, and nothing another member won is delivered twice. A claim takes what the member
 * has room for from one batch; a member claims batch after batch until its room is used, so it
 * takes up to its window per wake, and a slow member (one with no room) does not hold back the
 * others. Once it holds a claim of the wake, it takes no part of a batch that would not fit
 * whole: the next claimer then starts at the batch's first record, where a claim in its middle
 * has the claimer read the length of every record before it — pages its process had not touched,
 * each a trap to the hypervisor on some hosts (PageTouch.ts). The room it leaves waits for one
 * of its deliveries to be settled (`heldBack`), or a member that pulls again at once would take
 * the next batch a sliver at a time. A member's first claim of a wake still takes what fits, so a
 * window smaller than the topic's batches still fills.
 *
 * byKey, a member reads the topic in order and hands out the messages of the buckets it owns,
 * each once its entry names it (claiming), moving that bucket's frontier past it. It stops, its
 * place kept, when it has no room: its keys wait for it, the others' do not.
 */
import { Effect } from "effect"
import type { Delivery } from "../../services/groups/ConsumerGroups.js"
import { bucketOf } from "./GroupBuckets.js"
import type { Frontier } from "./GroupClaims.js"
import { LocalDelivery, makeDelivery } from "./GroupDelivery.js"
import type { MemberState } from "./GroupMemberState.js"
import { hold, room, scanPosition } from "./GroupMemberState.js"
import { BatchCopy, type BatchRef, type ReadError, type RunProblem } from "./GroupReader.js"

/** Why dispatch stopped: nothing more committed, no room (or no free entry), or it handed some out. */
export type Dispatched = "end" | "blocked" | "more"

/** A frontier this far past the reader is reached by opening the reader there, not by reading through. */
const SEEK_PAST_MESSAGES = 1 << 16

/**
 * Claims for `m` the messages of `batch` from the frontier `from` on, its entries reserved and
 * filled (each naming the claim) first, as one run; false if it could reserve none or another
 * member's claim won. The run's messages are then copied out of the log (a problem if the log no
 * longer holds them: the claim stands, and its entries go to the others as a failed member's do)
 * and its deliveries go to `out` — no effect, and nothing made per message but its delivery.
 */
const claimShared = (
  m: MemberState,
  batch: BatchRef,
  from: Frontier,
  nowMs: number,
  out: Array<Delivery>
): boolean | RunProblem => {
  const { pending, claims, config } = m.group
  const slots = m.runSlots
  const controls = m.runControls
  const count = pending.reserveRun(m.ref, slots, Math.min(room(m), batch.end - from.offset))
  if (count === 0) return false
  const deadlineMs = nowMs + config.ackWaitMs
  pending.fillRun(slots, count, m.ref, from.offset, from.claim, deadlineMs, controls)
  if (!claims.claim(from, count, m.ref)) {
    for (let i = 0; i < count; i++) pending.unreserve(slots[i]!, m.ref)
    return false
  }
  const copy = m.reader.copyRun(batch, from.offset, count)
  if (!(copy instanceof BatchCopy)) return copy
  pending.deliverRun(slots, count, controls, nowMs)
  let delivered = 0
  for (let i = 0; i < count; i++) {
    const control = controls[i]!
    if (control === 0n) continue
    delivered++
    out.push(new LocalDelivery(m.settling, slots[i]!, control, 0, 1, copy.message(i)))
  }
  hold(m, 0, delivered)
  m.group.members.countDelivered(m.ref, count)
  return true
}

/** The most batches read at once without keys: a window's worth of small batches in one read. */
const READ_AHEAD_BATCHES = 64

/** Batches to read for `wanted` more messages, judging by the size of the batches read last. */
const batchesFor = (wanted: number, lastBatchMessages: number) =>
  Math.max(1, Math.min(READ_AHEAD_BATCHES, Math.ceil(wanted / Math.max(1, lastBatchMessages))))

/**
 * Without keys: claims from the group's frontier while `m` has room, batch after batch, reading
 * on until the frontier lies in a batch at hand — a member takes up to its window per wake
 * however small the topic's batches are.
 */
const dispatchShared = (m: MemberState, nowMs: number, out: Array<Delivery>): Effect.Effect<Dispatched, ReadError> =>
  Effect.gen(function*() {
    const { claims } = m.group
    let handedOut = false
    for (;;) {
      if (room(m) <= 0) return handedOut ? "more" : "blocked"
      const from = claims.read()
      const ahead = m.ahead
      while (ahead.length > 0 && ahead[0]!.end <= from.offset) ahead.shift()
      const batch = ahead[0]
      if (batch !== undefined && from.offset >= batch.start) {
        if (handedOut && batch.end - from.offset > room(m)) {
          m.heldBack = true
          return "more"
        }
        const claimed = claimShared(m, batch, from, nowMs, out)
        if (claimed === true) {
          handedOut = true
          continue
        }
        if (claimed !== false) {
          return yield* ("gone" in claimed
            ? m.reader.behindAt(from.offset)
            : Effect.fail(m.reader.corrupt(claimed.corrupt)))
        }
        // No entry free, or another claim won: look again (at a frontier that moved) or stop (the table is full).
        if (claims.read().word === from.word) return handedOut ? "more" : "blocked"
        continue
      }
      const position = m.reader.position()
      if (batch !== undefined || from.offset < position || from.offset > position + SEEK_PAST_MESSAGES) {
        m.ahead = []
        yield* m.reader.open(from.offset)
      }
      const read = yield* m.reader.nextFrom(from.offset, batchesFor(room(m), m.lastBatchMessages))
      if (read.read === 0) return handedOut ? "more" : "end"
      const last = read.batches.at(-1)
      if (last !== undefined) m.lastBatchMessages = last.count
      m.ahead.push(...read.batches)
    }
  })

/** byKey: hands out the messages of the buckets `m` owns, in offset order, from where it stopped. */
const dispatchOwned = (m: MemberState, nowMs: number, out: Array<Delivery>): Effect.Effect<Dispatched, ReadError> =>
  Effect.gen(function*() {
    const { pending, buckets, members, config } = m.group
    if (m.seekTo !== undefined) {
      yield* m.reader.open(m.seekTo)
      m.batch = undefined
      m.seekTo = undefined
    }
    // The rest of a batch kept from an earlier pass: a trim since may have cut past it (its copy stays whole).
    const kept = m.batch
    if (kept !== undefined && m.index < kept.count && !m.reader.holds(kept, kept.start + m.index)) {
      return yield* m.reader.behindAt(kept.start + m.index)
    }
    let outcome: Dispatched = "end"
    for (;;) {
      if (m.batch === undefined || m.index >= m.batch.count) {
        members.setScanned(m.ref, scanPosition(m))
        m.batch = yield* m.reader.next()
        m.index = 0
        if (m.batch === undefined) break
      }
      const batch = m.batch
      const offset = batch.start + m.index
      const bucket = bucketOf(batch.keyOf(m.index), offset, buckets.count)
      if (m.owned.has(bucket) && offset >= buckets.frontier(bucket)) {
        const slot = room(m) > 0 ? pending.reserve(m.ref) : undefined
        if (slot === undefined) {
          outcome = "blocked"
          break
        }
        const claiming = pending.fill(slot, m.ref, offset, bucket, nowMs + config.ackWaitMs)
        buckets.raiseFrontier(bucket, offset + 1)
        const control = pending.deliver(slot, claiming, nowMs, nowMs + config.ackWaitMs)
        if (control !== undefined) {
          hold(m, bucket)
          members.countDelivered(m.ref, 1)
          out.push(makeDelivery(m.settling, { slot, control, lane: bucket, deliveries: 1 }, batch.message(m.index)))
          outcome = "more"
        }
      }
      m.index++
    }
    members.setScanned(m.ref, scanPosition(m))
    return outcome
  })

/** Hands out new messages to `m` while it has room. */
export const dispatch = (m: MemberState, nowMs: number, out: Array<Delivery>): Effect.Effect<Dispatched, ReadError> =>
  m.group.config.byKey ? dispatchOwned(m, nowMs, out) : dispatchShared(m, nowMs, out)
