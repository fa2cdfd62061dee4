/**
 * `cxlog groups`: the region's consumer groups as their objects hold them — members, pending
 * messages, the oldest pending one's age, redeliveries and dead letters — one group described,
 * its pending messages listed, and groups created and deleted (through the head's coordinator).
 * On the region's host, as a client of the region; with `--brokers`, through a broker over TCP
 * (ConsumerGroupsRemote.ts: the broker answers from the region where it runs, as the user's rights allow).
 * A group that cannot be read is said on stderr beside the list, and in its JSON's `unreadable`, either way.
 */
import { Console, Effect } from "effect"
import { layerRemote, type RemoteGroupsOptions } from "../../layers/groups/ConsumerGroupsRemote.js"
import { groupMember, type RegionAccess } from "../../layers/Roles.js"
import {
  ConsumerGroups,
  type GroupInfo,
  type GroupSpec,
  type PendingMessage
} from "../../services/groups/ConsumerGroups.js"
import { table } from "../report/Table.js"
import { headPresent } from "./HeadPresent.js"

/** Where a groups command works: the region on this host, or through brokers (`remote`). */
export interface GroupsAt {
  readonly region: RegionAccess
  readonly remote?: RemoteGroupsOptions
}

export type GroupsWords =
  | { readonly kind: "list" }
  | { readonly kind: "describe"; readonly name: string }
  | { readonly kind: "pending"; readonly name: string }
  | { readonly kind: "create"; readonly spec: GroupSpec }
  | { readonly kind: "delete"; readonly name: string }

const age = (ms: number | undefined): string =>
  ms === undefined ?
    "-" :
    ms < 1_000 ?
    `${Math.round(ms)}ms` :
    ms < 120_000 ?
    `${(ms / 1_000).toFixed(1)}s` :
    `${Math.round(ms / 60_000)}m`

const listTable = (groups: ReadonlyArray<GroupInfo>): string =>
  groups.length === 0 ? "no consumer groups" : table(
    ["group", "topic", "keys", "members", "pending", "oldest", "lag", "acked", "redelivered", "dead letters"],
    groups.map((g) => [
      g.name,
      g.topicGone ? `${g.topic} (deleted)` : g.behindRetention === undefined ? g.topic : `${g.topic} (behind)`,
      g.byKey ? "by key" : "-",
      g.members.length,
      g.pending,
      age(g.oldestPendingAgeMs),
      g.lag,
      g.acked,
      g.redeliveries,
      g.deadLetters
    ])
  )

/** Where the group holds its topic's retention (docs/consumers.md, "Held by the group"). */
const holdText = (g: GroupInfo): string =>
  g.holdCutOff
    ? "its hold on the topic was cut off (CXLOG_CONSUMER_HOLD_MS): taken again once the group catches up"
    : g.heldFrom === undefined
    ? "it holds none of the topic's retention"
    : `the topic keeps its messages from offset ${g.heldFrom} on for it`

const describeText = (g: GroupInfo): string =>
  [
    `group ${g.name}: topic ${g.topic}${
      g.topicGone ? " (deleted: its members fail with GroupTopicGone; delete the group)" : ""
    }${g.byKey ? ", by key" : ""}, ackWait ${g.ackWaitMs} ms, maxDeliver ${
      g.maxDeliver === 0 ? "no limit" : g.maxDeliver
    }, dead letters to ${g.deadLetterTopic ?? "nowhere (counted, dropped)"}`,
    `started at offset ${g.startOffset}; handed out up to ${g.frontier} of ${g.end} (lag ${g.lag}); ${holdText(g)}`,
    ...(g.behindRetention === undefined ? [] : [
      `behind its topic's retention: it needs offset ${g.behindRetention.needs}, the topic holds from ${g.behindRetention.earliest} on; ` +
      "its members fail with GroupBehindRetention (delete the group and create it again to go on)"
    ]),
    `pending ${g.pending} of ${g.pendingSlots} (oldest ${
      age(g.oldestPendingAgeMs)
    }); acked ${g.acked}, redelivered ${g.redeliveries} (${g.expired} after ackWait), dead letters ${g.deadLetters}`,
    g.members.length === 0 ? "no members" : table(
      ["member pid", "slot", "in flight", "max", "delivered", "acked", ...(g.byKey ? ["buckets"] : [])],
      g.members.map((
        m
      ) => [
        m.stopped === true ? `${m.pid} (stopped)` : m.pid,
        m.slot,
        m.pending,
        m.maxInFlight,
        m.delivered,
        m.acked,
        ...(g.byKey ? [m.buckets] : [])
      ])
    )
  ].join("\n")

/**
 * `cxlog groups pending G` as text. A message given back (`--limit`, a worker closed with jobs it
 * never handed out) waits with no deadline (0): due to the next member that looks, neither due at
 * a time nor overdue; one never delivered has no first delivery.
 */
export const pendingTable = (name: string, pending: ReadonlyArray<PendingMessage>, nowMs: number): string =>
  pending.length === 0 ? `group ${name}: nothing pending` : table(
    ["offset", "state", "member pid", "deliveries", "first delivered", "due"],
    pending.map((p) => [
      p.offset,
      p.state,
      p.memberPid ?? "-",
      p.deliveries,
      p.firstDeliveredAtMs === 0 ? "-" : `${age(nowMs - p.firstDeliveredAtMs)} ago`,
      p.state === "claiming" || p.deadlineMs === 0 ? "-" : due(p.deadlineMs - nowMs)
    ])
  )

/**
 * When a message is due: in how long, or how long ago. A message overdue for more than a look of
 * the members is one nobody took over: every member that may take it (byKey, its key's owner,
 * which holds it) is stopped or not reading.
 */
const due = (inMs: number): string => (inMs >= 0 ? `in ${age(inMs)}` : `overdue ${age(-inMs)}`)

const print = (json: boolean, value: unknown, text: () => string) => Console.log(json ? JSON.stringify(value) : text())

/**
 * `cxlog groups --json`: the groups, and why each group the list leaves out cannot be read, as
 * `cxlog topics --json` gives its `unreadable` (absent: none), so a script learns of them too.
 */
interface GroupsReport {
  readonly groups: ReadonlyArray<GroupInfo>
  readonly unreadable?: ReadonlyArray<string>
}

/**
 * Each word through `ConsumerGroups`. The list says on stderr each group it leaves out because it
 * cannot be read, and in its JSON's `unreadable`.
 */
const groupsOf = (words: GroupsWords, json: boolean) =>
  Effect.gen(function*() {
    const groups = yield* ConsumerGroups
    switch (words.kind) {
      case "list": {
        const { groups: all, unreadable } = yield* groups.overview
        const report: GroupsReport = {
          groups: all,
          ...(unreadable.length === 0 ? {} : { unreadable: unreadable.map((corrupt) => corrupt.message) })
        }
        yield* print(json, report, () => listTable(all))
        for (const corrupt of unreadable) yield* Console.error(`cxlog groups: ${corrupt.message}`)
        return
      }
      case "describe": {
        const info = yield* groups.describe(words.name)
        return yield* print(json, info, () => describeText(info))
      }
      case "pending": {
        const pending = yield* groups.pending(words.name)
        return yield* print(json, pending, () => pendingTable(words.name, pending, Date.now()))
      }
      case "create": {
        const info = yield* groups.create(words.spec)
        return yield* print(json, info, () =>
          `created group ${info.name} on topic ${info.topic} at offset ${info.startOffset}`)
      }
      case "delete": {
        yield* groups.delete(words.name)
        return yield* print(json, { deleted: words.name }, () =>
          `deleted group ${words.name}`)
      }
    }
  })

/**
 * `cxlog groups …`: on the region's host each word runs through a member of the region's groups,
 * which joins the head's coordinator (so the head is looked for first); through brokers, over a
 * groups' connection to the first that takes it (the broker's own member answers).
 */
export const groupsReport = (at: GroupsAt, words: GroupsWords, json: boolean) =>
  at.remote === undefined
    ? Effect.zipRight(
      headPresent(at.region, "its coordinator to answer for the groups"),
      groupsOf(words, json).pipe(Effect.provide(groupMember(at.region)))
    )
    : groupsOf(words, json).pipe(Effect.provide(layerRemote(at.remote)))
