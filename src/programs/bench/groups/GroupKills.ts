/**
 * `cxlog bench --type group --kill-member`: cxlog's members SIGKILLed at random points of the
 * run, `kills` times, each started again at once (while the run goes on). The group's ackWait is
 * ten minutes, so only the death hands a member's messages on. Each member writes what it holds
 * and what it acked to a file of its own as it goes (MemberRecord.ts), which its SIGKILL leaves
 * whole. The member is killed holding messages: told to hold, it keeps the next chunk it is given
 * unacked, and is killed once the group says it holds some; a kill that found it holding nothing
 * (no messages left for it) is counted apart. Kills stop once every message is acked: the run
 * may end before all `kills` (each waits for what the victim held to be delivered again, and a
 * restart), and `kills` in the result says how many there were. Per kill: `redeliveredWithinMs`, from the SIGKILL to
 * the first delivery again (deliveryCount > 1) of a message its record says it held, as another
 * member reports it. After the run: every message acked (a message a killed member held and
 * nobody else acked was acked by it: the group says nothing is pending), none twice, none lost.
 */
import { Console, Effect, Fiber, type Scope } from "effect"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { percentile } from "../../report/Percentiles.js"
import { table } from "../../report/Table.js"
import { type GroupBenchOptions, type GroupLoad, type GroupWorkload, openLoad } from "./GroupLoads.js"
import { auditAcks, epochMs, type Member, say, startMember, until } from "./GroupRun.js"
import { readRecord } from "./MemberRecord.js"
import { CXLOG } from "./MemberSystems.js"

/** Only a death hands messages on during the run. */
const ACK_WAIT_MS = 600_000
/** A killed member's messages not delivered elsewhere within this fail the measurement of that kill. */
const REDELIVERY_BOUND_MS = 5_000
/** How long a member told to hold is given to be handed messages (none left: killed holding nothing). */
const HOLD_BOUND_MS = 3_000
const HOLD_POLL_MS = 1

/** The member's record in `file` as it stands: what it took in hand, and what it acked. */
const recordOf = (file: string) => readRecord(readFileSync(file))

const exitOf = (member: Member) =>
  Effect.async<void>((resume) => {
    if (member.child.exitCode !== null || member.child.signalCode !== null) return resume(Effect.void)
    member.child.once("exit", () => resume(Effect.void))
  })

/** A member of the run, and the file its record goes to. */
interface RunMember {
  readonly member: Member
  readonly file: string
}

/** The members started so far (the first ones and every one started again), in the order started. */
interface MemberPool {
  /** Starts one more member, connected; it goes when told to. */
  readonly start: Effect.Effect<RunMember, unknown, Scope.Scope>
  /** The acks of every member started so far. */
  readonly total: () => number
  /** Each member's record file. */
  readonly files: Array<string>
  /** Each member's acks, as it reported or its record says. */
  readonly acked: Array<number>
  /** Each message's deliveries again (epoch ms), as the members said: a message may be delivered again after each of several kills. */
  readonly redelivered: Map<number, Array<number>>
}

/** `load`'s members for the run, each recording to a file of its own in `dir`. */
const memberPool = (dir: string, load: GroupLoad, w: GroupWorkload): MemberPool => {
  const redelivered = new Map<number, Array<number>>()
  const files: Array<string> = []
  const acked: Array<number> = []
  const start = Effect.gen(function*() {
    const k = files.length
    files.push(join(dir, `member-${k}.rec`))
    acked.push(0)
    const member = yield* startMember(load, w, k, files[k]!)
    // A member's acks only grow: a report that comes late never lowers what its record said.
    member.onEvent("progress", (e) => (acked[k] = Math.max(acked[k]!, e.acked)))
    member.onEvent("redelivered", (e) => {
      const times = redelivered.get(e.index)
      if (times === undefined) redelivered.set(e.index, [e.atMs])
      else times.push(e.atMs)
    })
    return { member, file: files[k]! }
  })
  return { start, total: () => acked.reduce((a, b) => a + b, 0), files, acked, redelivered }
}

/**
 * One kill: what the group said the member held, and how soon another got it (null: none within
 * the bound); whether the victim was a member started again during the run, and the acks (of
 * every member, and of the victim) when it was told to hold — a kill with no sample says by these
 * why it had none.
 */
interface KillSample {
  readonly held: number
  readonly redeliveredWithinMs: number | null
  readonly victimRestarted: boolean
  readonly ackedWhenHeld: number
  readonly victimAcked: number
}

/** The kills so far, and the members running in their places. */
interface Kills {
  /** The members running (or killed and being started again), by place. */
  readonly members: Array<RunMember>
  /** Killed members being started again, by their place in `members`. */
  readonly restarting: Map<number, Fiber.RuntimeFiber<RunMember, unknown>>
  /** The places in `members` holding a member started again. */
  readonly restartedPlaces: Set<number>
  /** Each kill in turn. */
  readonly perKill: Array<KillSample>
  readonly redeliveredWithinMs: Array<number>
  /** What each killed member held unsettled when it died, as its record says. */
  readonly unsettledByKilled: Array<Set<number>>
  nothingHeld: number
  notRedelivered: number
}

/** The members started again since (every one, with `all`, once it is), in their places. */
const restartedSoFar = (kills: Kills, all: boolean) =>
  Effect.forEach([...kills.restarting], ([i, fiber]) =>
    Effect.gen(function*() {
      if (!all && (yield* Fiber.poll(fiber))._tag === "None") return
      kills.members[i] = yield* Fiber.join(fiber)
      kills.restarting.delete(i)
    }))

/**
 * Kill number `kill`: a member SIGKILLed while it holds messages and started again, and the time
 * until another member is delivered what it held. False: no kill, everything is acked already.
 */
const killOnce = (o: GroupBenchOptions, load: GroupLoad, pool: MemberPool, kills: Kills, kill: number) =>
  Effect.gen(function*() {
    const { acked, files, redelivered, start, total } = pool
    const { members, restartedPlaces, restarting } = kills
    // At a random point: once the members acked between a quarter and three quarters of a kill's
    // share more — a share of what is left, as the run goes on while killed members restart.
    const share = (o.messages - total()) / (o.kills - kill + 1)
    const target = total() + Math.floor(share * (0.25 + Math.random() / 2))
    yield* until(() => total() >= target, total)
    // Kills stop once everything is acked: by the members' count, or by the group's own (a member
    // killed between an ack and its record's line leaves the count short of what the group settled).
    if (total() >= o.messages || (yield* load.settled).settled) return false
    // At least two members other than the victim take messages: one restarting at most.
    yield* restartedSoFar(kills, restarting.size >= members.length - 2)
    // Waiting for restarts can take seconds: the others may have acked everything meanwhile.
    if (total() >= o.messages) return false
    const ready = members.map((_, i) => i).filter((i) => !restarting.has(i))
    const victim = ready[Math.floor(Math.random() * ready.length)]!
    const { file, member } = members[victim]!
    const ackedWhenHeld = total()
    const place = files.indexOf(file)
    const victimAcked = acked[place] ?? 0
    // Killed holding messages: told to keep the next it is given unacked, then killed once the
    // group says it holds some (a member holds a chunk only while it works on it, a moment of each wake).
    say(member, "hold")
    const holdUntil = performance.now() + HOLD_BOUND_MS
    let held = yield* load.heldBy!(member.pid)
    while (held === 0 && performance.now() < holdUntil && total() < o.messages) {
      yield* Effect.sleep(HOLD_POLL_MS)
      held = yield* load.heldBy!(member.pid)
    }
    // Every message acked before it was handed any: nothing is left to hold, so no kill to measure.
    if (held === 0 && total() >= o.messages) return false
    // The group counts a chunk held once the member claimed it, the member's record once it took
    // the chunk in hand: killed in between, its record would not name what it held, and the
    // redelivery of those messages could not be timed. It records the chunk at once, all together.
    while (held > 0 && recordOf(file).unsettled.size < held && performance.now() < holdUntil) {
      yield* Effect.sleep(HOLD_POLL_MS)
    }
    const killedAtMs = epochMs()
    member.kill("SIGKILL")
    yield* exitOf(member)
    const record = recordOf(file)
    const unsettled = record.unsettled
    // Its acks since its last progress report count too (its record has them all): without
    // them the run's count would stay short of the messages the group has settled.
    acked[place] = Math.max(acked[place]!, record.acked.length)
    kills.unsettledByKilled.push(unsettled)
    // Started again while the others take over what it held, and the run goes on.
    restarting.set(victim, yield* Effect.fork(Effect.tap(start, ({ member }) => say(member, "go"))))
    const victimRestarted = restartedPlaces.has(victim)
    restartedPlaces.add(victim)
    // Only a death delivers anything again here (ackWait is ten minutes, nothing is nak'd).
    const firstAgain = () => {
      let first = Infinity
      for (const index of unsettled) {
        for (const atMs of redelivered.get(index) ?? []) if (atMs >= killedAtMs) first = Math.min(first, atMs)
      }
      return first
    }
    const deadline = performance.now() + REDELIVERY_BOUND_MS
    while (firstAgain() === Infinity && performance.now() < deadline) yield* Effect.sleep(5)
    const first = firstAgain()
    kills.perKill.push({
      held,
      redeliveredWithinMs: first === Infinity ? null : Math.round(first - killedAtMs),
      victimRestarted,
      ackedWhenHeld,
      victimAcked
    })
    // Nothing delivered again from a member the group said held nothing: not a failure.
    if (first !== Infinity) kills.redeliveredWithinMs.push(first - killedAtMs)
    else if (held === 0) kills.nothingHeld++
    else kills.notRedelivered++
    return true
  })

/** Waits until the group has handed out every message and nothing is pending; what it said last. */
const untilSettled = (load: GroupLoad, total: () => number) =>
  Effect.gen(function*() {
    let said = yield* load.settled
    yield* until(() => said.settled, total).pipe(
      Effect.zipLeft(
        Effect.repeat(Effect.flatMap(load.settled, (s) => Effect.sync(() => (said = s))), {
          until: () => said.settled
        }),
        { concurrent: true }
      )
    )
    return said
  })

/** The bench's JSON line, from the members' records after the run and what the group said. */
const killsResult = (
  o: GroupBenchOptions,
  records: ReadonlyArray<ReturnType<typeof recordOf>>,
  kills: Kills,
  said: Effect.Effect.Success<GroupLoad["settled"]>,
  elapsedMs: number
) => {
  const { nothingHeld, notRedelivered, perKill, redeliveredWithinMs, unsettledByKilled } = kills
  const { duplicates, lost: noAck } = auditAcks(o.messages, records.map((r) => r.acked))
  const ackedSomewhere = new Set(records.flatMap((r) => r.acked))
  // Held by a killed member, acked by nobody else: its own ack settled it (the group has nothing pending).
  const ackedByKilled = new Set(unsettledByKilled.flatMap((s) => [...s]).filter((i) => !ackedSomewhere.has(i)))
  const lost = noAck - (said.settled ? ackedByKilled.size : 0)
  const sorted = [...redeliveredWithinMs].sort((a, b) => a - b)
  return {
    bench: "cxlog-group-kill",
    members: o.members,
    local: true,
    byKey: o.byKey,
    messages: o.messages,
    messageBytes: o.messageBytes,
    kills: unsettledByKilled.length,
    redeliveredWithinMs: {
      p50: sorted.length === 0 ? null : Math.round(percentile(sorted, 0.5)),
      max: sorted.length === 0 ? null : Math.round(sorted.at(-1)!),
      samples: sorted.map((ms) => Math.round(ms))
    },
    perKill,
    killsHoldingNothing: nothingHeld,
    killsNotRedelivered: notRedelivered,
    lost,
    duplicates,
    ackedByKilledMembers: ackedByKilled.size,
    auditPassed: lost === 0 && duplicates === 0 && said.settled && notRedelivered === 0,
    systemSays: said.detail,
    throughputMsgsPerSec: Math.round(o.messages / (elapsedMs / 1000)),
    goal: { redeliveredWithinMsP50: 200 }
  }
}

/** The bench's table. */
const killsTable = (o: GroupBenchOptions, result: ReturnType<typeof killsResult>): string =>
  table(
    [`group, ${o.members} members, ${o.messages} × ${o.messageBytes} B, SIGKILLed ${result.kills} times`, "value"],
    [
      ["redelivered within (ms) p50", result.redeliveredWithinMs.p50 ?? ""],
      ["redelivered within (ms) max", result.redeliveredWithinMs.max ?? ""],
      [
        "each kill: held, redelivered within (ms)",
        result.perKill.map((k) => `${k.held}: ${k.redeliveredWithinMs ?? "none"}`).join(", ")
      ],
      ["lost", result.lost],
      ["acked twice", result.duplicates],
      ["audit", result.auditPassed ? "passed" : "FAILED"],
      ["the group says", result.systemSays]
    ]
  )

export const benchGroupKills = (o: GroupBenchOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const w = { ...o, ackWaitMs: ACK_WAIT_MS }
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "cxlog-group-kills-"))),
      (d) => Effect.sync(() => rmSync(d, { recursive: true, force: true }))
    )
    const load = yield* openLoad(CXLOG, w, 0)
    const pool = memberPool(dir, load, w)
    // Every member connected before one go, as in a plain run.
    const members = yield* Effect.forEach(Array.from({ length: o.members }), () => pool.start, {
      concurrency: "unbounded"
    })
    const startedAtMs = epochMs()
    for (const { member } of members) say(member, "go")
    const kills: Kills = {
      members,
      restarting: new Map(),
      restartedPlaces: new Set(),
      perKill: [],
      redeliveredWithinMs: [],
      unsettledByKilled: [],
      nothingHeld: 0,
      notRedelivered: 0
    }
    for (let kill = 0; kill < o.kills; kill++) {
      if (!(yield* killOnce(o, load, pool, kills, kill))) break
    }
    yield* restartedSoFar(kills, true)
    // The run ends when the group has handed out every message and nothing is pending.
    const said = yield* untilSettled(load, pool.total)
    const elapsedMs = epochMs() - startedAtMs
    for (const { member } of members) say(member, "stop")
    yield* Effect.forEach(members, ({ member }) => member.event("done", 30_000))
    const result = killsResult(o, pool.files.map(recordOf), kills, said, elapsedMs)
    if (!o.json) yield* Console.log(killsTable(o, result))
    yield* Console.log(JSON.stringify(result))
    return result
  }))
