/**
 * One measured run of the group bench on one system: its members started (`cxlog
 * bench-group-member`, each a process of its own), connected and told `go` together; the clock
 * runs from `go` to the last ack of the run's last message (each member's own clock point of
 * its last settled ack); the members are stopped once their acks together reach the run's
 * messages, and say what they acked. The audit: every message acked exactly once (none lost,
 * none twice), and the system itself says nothing is pending.
 */
import { Effect, Schema, type Scope } from "effect"
import { type RoleOf, spawnRole, whileAlive } from "../../run/Cluster.js"
import type { GroupLoad, GroupWorkload } from "./GroupLoads.js"

/** What a member tells the bench (MemberMain.ts). */
export const MemberEvents = {
  ready: Schema.Struct({ event: Schema.Literal("ready"), pid: Schema.Number }),
  progress: Schema.Struct({ event: Schema.Literal("progress"), acked: Schema.Number }),
  redelivered: Schema.Struct({ event: Schema.Literal("redelivered"), index: Schema.Number, atMs: Schema.Number }),
  done: Schema.Struct({
    event: Schema.Literal("done"),
    acked: Schema.instanceOf(Uint32Array),
    ackedCount: Schema.Number,
    lastAckAtMs: Schema.Number,
    cpuSeconds: Schema.Number,
    fold: Schema.Number
  })
}
export type Member = RoleOf<typeof MemberEvents>

const READY_MS = 30_000
/** No member acking anything for this long ends the run (its audit then says what was lost). */
export const STALL_MS = 30_000
const DONE_MS = 30_000
const WATCH_MS = 5

export const epochMs = () => performance.timeOrigin + performance.now()

/** Member `index` of `load`'s group, connected (ready); with `recordFile`, its record goes there. */
export const startMember = (
  load: GroupLoad,
  w: GroupWorkload,
  index: number,
  recordFile = ""
): Effect.Effect<Member, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const member = yield* spawnRole(
      `${load.system} member ${index}`,
      ["bench-group-member", load.system, load.address, load.group, String(w.messages), recordFile],
      { CXLOG_METRICS_PORT: "0" },
      MemberEvents
    )
    yield* member.event("ready", READY_MS)
    return member
  })

export const say = (member: Member, event: string) => member.child.send({ event }, undefined, undefined, () => {})

/** How the members' acks went: each message's ack count, as they reported. */
export const auditAcks = (messages: number, acked: ReadonlyArray<ArrayLike<number>>) => {
  const counts = new Uint8Array(messages)
  let outside = 0
  for (const list of acked) {
    for (let i = 0; i < list.length; i++) {
      const index = list[i]!
      if (index < messages) counts[index] = Math.min(255, counts[index]! + 1)
      else outside++
    }
  }
  let lost = 0
  let duplicates = 0
  for (let i = 0; i < messages; i++) {
    if (counts[i] === 0) lost++
    else duplicates += counts[i]! - 1
  }
  return { lost, duplicates: duplicates + outside }
}

export interface GroupRunFigures {
  readonly system: string
  readonly messages: number
  readonly messageBytes: number
  readonly members: number
  readonly elapsedMs: number
  readonly throughputMsgsPerSec: number
  readonly auditPassed: boolean
  readonly acked: number
  readonly lost: number
  readonly duplicates: number
  /** What the system said after the run. */
  readonly systemSays: string
  /** CPU µs per message: the server's (head, redis-server, nats-server) and the members' together. */
  readonly cpuMicrosPerMessage: { readonly server: number; readonly members: number }
}

/** Waits until `done()` holds, failing the wait after STALL_MS without `progress()` moving. */
export const until = (done: () => boolean, progress: () => number) =>
  Effect.gen(function*() {
    let seen = progress()
    let quietSince = performance.now()
    while (!done()) {
      const now = progress()
      if (now !== seen) {
        seen = now
        quietSince = performance.now()
      } else if (performance.now() - quietSince > STALL_MS) {
        return false
      }
      yield* Effect.sleep(WATCH_MS)
    }
    return true
  })

export const runGroup = (load: GroupLoad, w: GroupWorkload) =>
  Effect.gen(function*() {
    const members = yield* Effect.forEach(
      Array.from({ length: w.members }, (_, i) => i),
      (i) => startMember(load, w, i),
      { concurrency: "unbounded" }
    )
    const acked = members.map(() => 0)
    members.forEach((member, i) => member.onEvent("progress", (e) => (acked[i] = e.acked)))
    const total = () => acked.reduce((a, b) => a + b, 0)
    const serverCpuAtGo = load.serverCpuSeconds() ?? 0
    const startedAtMs = epochMs()
    for (const member of members) say(member, "go")
    yield* until(() => total() >= w.messages, total).pipe(whileAlive(members, "the members to ack every message"))
    const serverCpu = (load.serverCpuSeconds() ?? serverCpuAtGo) - serverCpuAtGo
    for (const member of members) say(member, "stop")
    const done = yield* Effect.forEach(members, (member) => member.event("done", DONE_MS))
    const endedAtMs = Math.max(...done.map((d) => d.lastAckAtMs))
    const { duplicates, lost } = auditAcks(w.messages, done.map((d) => d.acked))
    const system = yield* load.settled
    const elapsedMs = endedAtMs - startedAtMs
    const perMessage = (seconds: number) => Math.round((seconds * 1e6) / w.messages * 100) / 100
    return {
      system: load.system,
      messages: w.messages,
      messageBytes: w.messageBytes,
      members: w.members,
      elapsedMs: Math.round(elapsedMs),
      throughputMsgsPerSec: Math.round(w.messages / (elapsedMs / 1000)),
      auditPassed: lost === 0 && duplicates === 0 && system.settled,
      acked: done.reduce((sum, d) => sum + d.ackedCount, 0),
      lost,
      duplicates,
      systemSays: system.detail,
      cpuMicrosPerMessage: {
        server: perMessage(serverCpu),
        members: perMessage(done.reduce((sum, d) => sum + d.cpuSeconds, 0))
      }
    } satisfies GroupRunFigures
  })
