/**
 * `cxlog bench --type group`: a pool of member processes sharing a stream of jobs, each job
 * worked on and acked once — cxlog's consumer group with local members (mapping the region) or
 * members through one broker (`remote`: over TCP), and with `--peers` the same pool on Redis Streams (`XREADGROUP` + `XACK`) and NATS JetStream
 * (a work-queue stream, pull consumers, `ack`), taking turns ROUNDS times in one bench.
 *
 * Like for like, and said so in the output: every system gets the same messages (count and
 * size, the same stamped bytes), stored in memory (cxlog's ACK 1) before its clock starts; the
 * same process shape (`members` member processes, each connected before a common `go`, holding
 * `MEMBER_WINDOW` messages at most); the same work per message (MemberRecord.ts `work`) and one
 * ack per message; the same clock points (from `go` to the last message's ack); and the same
 * audit (each member reports what its acks settled: every message exactly once, none lost, and
 * the system itself says nothing is pending). With `killMember`, cxlog's members are SIGKILLed
 * and started again during the run instead (GroupKills.ts).
 */
import { Console, Effect } from "effect"
import { table } from "../../report/Table.js"
import { benchGroupKills } from "./GroupKills.js"
import { type GroupBenchOptions, openLoad } from "./GroupLoads.js"
import { type GroupRunFigures, runGroup } from "./GroupRun.js"
import { CXLOG, type GroupSystem, MEMBER_WINDOW } from "./MemberSystems.js"

/** Turns each system takes, so none has only the coldest or the last turn. */
const ROUNDS = 2
/** What the issue asks, cxlog's msgs/s over each peer's: of local members, and of members through a broker (Redis only). */
const LOCAL_GOALS: Record<GroupSystem, number | undefined> = { cxlog: undefined, redis: 10, nats: 20 }
const REMOTE_GOALS: Record<GroupSystem, number | undefined> = { cxlog: undefined, redis: 2, nats: undefined }

/** The goals of a run against `peers`, local members or members through a broker (`remote`). */
export const goalsOf = (remote: boolean, peers: ReadonlyArray<GroupSystem>): Partial<Record<GroupSystem, number>> =>
  Object.fromEntries(peers.flatMap((peer) => {
    const goal = (remote ? REMOTE_GOALS : LOCAL_GOALS)[peer]
    return goal === undefined ? [] : [[peer, goal]]
  }))

const round = (n: number, places: number) => Math.round(n * 10 ** places) / 10 ** places
const mean = (values: ReadonlyArray<number>) => values.reduce((a, b) => a + b, 0) / values.length

/** A system's rounds as one: the mean msgs/s, every audit passed, every loss and duplicate counted. */
const overRounds = (runs: ReadonlyArray<GroupRunFigures>) => ({
  throughputMsgsPerSec: Math.round(mean(runs.map((r) => r.throughputMsgsPerSec))),
  auditPassed: runs.every((r) => r.auditPassed),
  messages: runs[0]!.messages,
  messageBytes: runs[0]!.messageBytes,
  members: runs[0]!.members,
  lost: runs.reduce((sum, r) => sum + r.lost, 0),
  duplicates: runs.reduce((sum, r) => sum + r.duplicates, 0),
  cpuMicrosPerMessage: {
    server: round(mean(runs.map((r) => r.cpuMicrosPerMessage.server)), 2),
    members: round(mean(runs.map((r) => r.cpuMicrosPerMessage.members)), 2)
  },
  runsMsgsPerSec: runs.map((r) => r.throughputMsgsPerSec),
  systemSays: runs.map((r) => r.systemSays)
})

const likeForLike = (o: GroupBenchOptions) =>
  `like for like: every system ${o.messages} messages of ${o.messageBytes} B (the same stamped bytes), stored in memory before its clock starts; ` +
  `${o.members} member processes each, connected before one go, at most ${MEMBER_WINDOW} messages in hand each; the same work and one ack per message; ` +
  `msgs/s from the go to the last message's ack; audited: each message acked exactly once (from what each member's acks settled) and nothing pending by the system's own count`

const benchPlain = (o: GroupBenchOptions) =>
  Effect.gen(function*() {
    const systems: ReadonlyArray<GroupSystem> = [CXLOG, ...o.peers]
    const runs = new Map<GroupSystem, Array<GroupRunFigures>>(systems.map((s) => [s, []]))
    const labels = new Map<GroupSystem, string>()
    for (let r = 0; r < ROUNDS; r++) {
      for (const system of systems) {
        const figures = yield* Effect.scoped(Effect.gen(function*() {
          const load = yield* openLoad(system, o, r)
          labels.set(system, `${load.label}; ${load.storage}`)
          return yield* runGroup(load, o)
        }))
        runs.get(system)!.push(figures)
      }
    }
    const cxlog = overRounds(runs.get(CXLOG)!)
    const peers = Object.fromEntries(o.peers.map((peer) => [peer, overRounds(runs.get(peer)!)]))
    const result = {
      bench: "cxlog-group",
      local: !o.remote,
      byKey: o.byKey,
      rounds: ROUNDS,
      ...cxlog,
      likeForLike: likeForLike(o),
      ...(o.peers.length === 0 ? {} : {
        peers,
        vsPeers: Object.fromEntries(
          o.peers.map((peer) => [peer, round(cxlog.throughputMsgsPerSec / peers[peer]!.throughputMsgsPerSec, 2)])
        ),
        goals: goalsOf(o.remote, o.peers)
      })
    }
    if (!o.json) {
      yield* Console.log(
        table(
          [
            `group: ${o.members} members, ${o.messages} × ${o.messageBytes} B (mean of ${ROUNDS} turns each)`,
            "msgs/s",
            "audit",
            "CPU µs/msg server",
            "members",
            "cxlog ÷ this"
          ],
          systems.map((system) => {
            const figures = system === CXLOG ? cxlog : peers[system]!
            return [
              labels.get(system)!,
              figures.throughputMsgsPerSec,
              figures.auditPassed ? "passed" : `FAILED (lost ${figures.lost}, twice ${figures.duplicates})`,
              figures.cpuMicrosPerMessage.server,
              figures.cpuMicrosPerMessage.members,
              system === CXLOG ? 1 : round(cxlog.throughputMsgsPerSec / figures.throughputMsgsPerSec, 2)
            ]
          })
        )
      )
      yield* Console.log(likeForLike(o))
    }
    yield* Console.log(JSON.stringify(result))
    return result
  })

/** Prints the bench's table (unless `json`) and its JSON line last. */
export const benchGroup = (o: GroupBenchOptions) =>
  o.kills > 0 ? Effect.asVoid(benchGroupKills(o)) : Effect.asVoid(benchPlain(o))
