/**
 * `cxlog bench-group-member SYSTEM ADDRESS GROUP MESSAGES [RECORD_FILE]` (hidden): one member of
 * a group bench, in a process of its own, for cxlog, Redis or NATS (MemberSystems.ts). It
 * connects, says `ready`, waits for the bench's `go`, then takes, works on and acks messages —
 * saying `progress` (its acks so far) every PROGRESS_MS and `redelivered` for each message it
 * got again — until the bench's `stop`, and says `done` with what it acked (MemberRecord.ts), when
 * its last ack settled and its CPU since `go`. After the bench's `hold` (the kill bench's, cxlog
 * only) it keeps the next messages it is given unacked, to be killed holding them. With RECORD_FILE its record goes there as it acks.
 */
import { Deferred, Effect } from "effect"
import { report } from "../../roles/Report.js"
import { fileRecord, memoryRecord } from "./MemberRecord.js"
import { GROUP_SYSTEMS, type GroupSystem, MEMBER_SYSTEMS } from "./MemberSystems.js"

const PROGRESS_MS = 20

/** Calls `heard` when the bench sends `{ event }` (the listener goes with the scope: it holds the IPC channel open). */
const onBench = (event: string, heard: () => void) => {
  const listener = (message: unknown) => {
    if ((message as { event?: unknown } | undefined)?.event === event) heard()
  }
  return Effect.acquireRelease(
    Effect.sync(() => process.on("message", listener)),
    () => Effect.sync(() => process.off("message", listener))
  )
}

/** Resumes once the bench has sent `{ event }`. */
const fromBench = (event: string) =>
  Effect.gen(function*() {
    const said = yield* Deferred.make<void>()
    yield* onBench(event, () => Deferred.unsafeDone(said, Effect.void))
    return Deferred.await(said)
  })

const now = () => performance.timeOrigin + performance.now()

export const groupBenchMember = (system: string, address: string, group: string, messages: number, file: string) =>
  Effect.gen(function*() {
    if (!(GROUP_SYSTEMS as ReadonlyArray<string>).includes(system)) {
      return yield* Effect.fail(new Error(`no group bench system ${system}: ${GROUP_SYSTEMS.join(", ")}`))
    }
    const go = yield* fromBench("go")
    const stop = yield* fromBench("stop")
    let holding = false
    yield* onBench("hold", () => (holding = true))
    const loop = yield* MEMBER_SYSTEMS[system as GroupSystem](address, group)
    const record = file === "" ? memoryRecord(messages) : fileRecord(file)
    yield* Effect.addFinalizer(() => Effect.sync(() => record.close()))
    report({ event: "ready", pid: process.pid })
    yield* go
    const cpuAtGo = process.cpuUsage()
    const progress = setInterval(() => report({ event: "progress", acked: record.ackedCount() }), PROGRESS_MS)
    yield* Effect.ensuring(
      loop.run({
        record,
        stop,
        holding: () => holding,
        redelivered: (index) => report({ event: "redelivered", index, atMs: now() })
      }),
      Effect.sync(() => clearInterval(progress))
    )
    const cpu = process.cpuUsage(cpuAtGo)
    report({
      event: "done",
      acked: record.ackedIndices(),
      ackedCount: record.ackedCount(),
      lastAckAtMs: record.lastAckAtMs(),
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      fold: loop.fold()
    })
  }).pipe(Effect.scoped)
