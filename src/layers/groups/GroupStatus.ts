/**
 * What a group's object says of it, for `describe`, `list` and `cxlog groups`: its config, its
 * live members and what each holds, its pending messages, how far it has handed out the topic,
 * and its counters. Read without locks: a snapshot whose numbers may move under it.
 */
import type { GroupInfo, GroupMember, PendingMessage } from "../../services/groups/ConsumerGroups.js"
import { isPidStopped } from "../region/ProcessInfo.js"
import { isDraining, ownerRef } from "./GroupBuckets.js"
import type { GroupObject } from "./GroupObject.js"
import type { EntryView } from "./GroupPending.js"

const isPending = (entry: EntryView) => entry.state !== "free" && entry.state !== "reserved"

const entriesOf = (group: GroupObject): Array<EntryView> => {
  const entries: Array<EntryView> = []
  for (let slot = 0; slot < group.config.pendingSlots; slot++) {
    // One load for most entries: the free ones.
    if (group.pending.control(slot) === 0n) continue
    const entry = group.pending.view(slot)
    if (isPending(entry)) entries.push(entry)
  }
  return entries
}

/**
 * Where the group's dispatch stands: the frontier, or byKey the lowest bucket's — each at least
 * where its owner has scanned (a bucket without messages of late keeps an old frontier).
 */
const frontierOf = (group: GroupObject, scannedBy: Map<number, number>): number => {
  if (!group.config.byKey) return group.frontier()
  const { buckets } = group
  let lowest = Infinity
  for (let b = 0; b < buckets.count; b++) {
    const word = buckets.ownerWord(b)
    const scanned = word !== 0 && !isDraining(word) ? scannedBy.get(ownerRef(word)) ?? 0 : 0
    lowest = Math.min(lowest, Math.max(buckets.frontier(b), scanned))
  }
  return lowest === Infinity ? group.config.startOffset : lowest
}

/**
 * The first offset the group may still need: where its dispatch stands (read first), or the oldest
 * message handed out and not settled, if lower. Each claim writes its entries before it moves the
 * frontier past them, so whatever lies below the frontier read is settled or among the entries read
 * after it: what the group's hold on its topic keeps (GroupHold.ts).
 */
export const lowWater = (group: GroupObject): number => {
  const { members } = group
  // Without keys the frontier alone; byKey, each live owner's scan (a look at the members' processes).
  const dispatched = group.config.byKey
    ? frontierOf(group, new Map(members.live().map((member) => [member.ref, members.scanned(member.slot)])))
    : group.frontier()
  return Math.min(dispatched, group.pending.lowestOffset())
}

/**
 * The group as it is now, beside what its topic holds (`bounds`; undefined when the topic it was
 * made on is gone).
 */
export const describeGroup = (
  group: GroupObject,
  bounds: { readonly earliest: number; readonly end: number } | undefined,
  nowMs: number,
  hold: { readonly committed: number; readonly cutOff: boolean } | undefined
): GroupInfo => {
  const { config, members, buckets } = group
  const live = members.live()
  const entries = entriesOf(group)
  const heldBy = new Map<number, number>()
  let oldest = Infinity
  for (const entry of entries) {
    if (entry.state !== "waiting") heldBy.set(entry.owner, (heldBy.get(entry.owner) ?? 0) + 1)
    if (entry.firstDeliveredAtMs > 0) oldest = Math.min(oldest, entry.firstDeliveredAtMs)
  }
  const bucketCounts = config.byKey ? buckets.counts() : new Map<number, number>()
  const scannedBy = new Map(live.map((member) => [member.ref, members.scanned(member.slot)]))
  const frontier = frontierOf(group, scannedBy)
  const end = bounds?.end ?? frontier
  const needs = bounds === undefined ? undefined : lowWater(group)
  const memberInfo = live.map((member): GroupMember => ({
    pid: member.pid,
    slot: member.slot,
    joinedAtMs: member.joinedAtMs,
    maxInFlight: member.maxInFlight,
    pending: heldBy.get(member.ref) ?? 0,
    delivered: member.delivered,
    acked: member.acked,
    buckets: bucketCounts.get(member.ref) ?? 0,
    ...(isPidStopped(member.pid) ? { stopped: true } : {})
  }))
  return {
    name: group.name,
    topic: config.topic,
    topicGone: bounds === undefined,
    byKey: config.byKey,
    ackWaitMs: config.ackWaitMs,
    maxDeliver: config.maxDeliver,
    deadLetterTopic: config.deadLetterTopic,
    startOffset: config.startOffset,
    createdAtMs: config.createdAtMs,
    memberSlots: config.memberSlots,
    pendingSlots: config.pendingSlots,
    holdRetention: config.holdRetention,
    frontier,
    end,
    lag: Math.max(0, end - frontier),
    ...(bounds !== undefined && needs !== undefined && needs < bounds.earliest
      ? { behindRetention: { needs, earliest: bounds.earliest } }
      : {}),
    heldFrom: hold === undefined || hold.cutOff ? undefined : hold.committed,
    holdCutOff: hold?.cutOff === true,
    members: memberInfo,
    pending: entries.length,
    oldestPendingAgeMs: oldest === Infinity ? undefined : Math.max(0, nowMs - oldest),
    redeliveries: group.counter("redeliveries"),
    expired: group.counter("expired"),
    deadLetters: group.counter("deadLetters"),
    acked: group.counter("acked")
  }
}

/** The group's pending messages, oldest offset first. */
export const pendingOf = (group: GroupObject): Array<PendingMessage> => {
  const pids = new Map(group.members.live().map((member) => [member.ref, member.pid]))
  return entriesOf(group).sort((a, b) => a.offset - b.offset).map((entry): PendingMessage => ({
    offset: entry.offset,
    state: entry.state === "waiting" ? "waiting" : entry.state === "claiming" ? "claiming" : "delivered",
    memberPid: entry.state === "waiting" ? undefined : pids.get(entry.owner),
    deliveries: entry.deliveries,
    deadlineMs: entry.deadlineMs,
    firstDeliveredAtMs: entry.firstDeliveredAtMs
  }))
}
