/**
 * A role whose orchestrator is SIGKILLed (so its stdout and stderr pipes have no reader and its
 * IPC channel closes) still ends through its finalizers: it leaves no region in /dev/shm, no
 * wake FIFO and no credential file. Before, the head either missed the disconnect (the parent
 * died before the head listened for it) and ran on, or died of the EPIPE on its first log line
 * during shutdown, or of the EPIPE of its ready event sent to the dead parent, with its
 * finalizers not run.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { defaultCredentialPath, defaultSecretPath } from "../../src/layers/net/Auth.js"
import { wakeDirectory, wakeFifoPath } from "../../src/layers/region/Doorbell.js"
import { spawnFixture, tempDir, uniqueRegion } from "../helpers/Processes.js"

/** Whether `pid` still runs (a zombie nobody reaped yet has ended). */
const running = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return false
  }
}

const orphanedHead = (when: "start" | "ready") =>
  Effect.gen(function*() {
    const region = yield* uniqueRegion(`orphan-${when}`)
    const parent = yield* spawnFixture("orphaning-parent", [region, when])
    const { pid: headPid } = yield* parent.next<{ pid: number }>(60_000)
    // The head is not the test's child: kill it in a finalizer if the test fails with it running.
    yield* Effect.addFinalizer(() => Effect.sync(() => running(headPid) && process.kill(headPid, "SIGKILL")))
    parent.process.kill("SIGKILL")
    yield* Effect.sync(() => running(headPid)).pipe(
      Effect.repeat({ while: (alive) => alive, schedule: Schedule.spaced("100 millis") }),
      Effect.timeoutFail({
        duration: "20 seconds",
        onTimeout: () => new Error(`head ${headPid} still runs 20 s after its parent was SIGKILLed`)
      })
    )
    const fifoPrefix = wakeFifoPath(region, 0).slice(wakeDirectory().length + 1, -1)
    const left = [
      ...(existsSync(`/dev/shm/${region}`) ? [`/dev/shm/${region}`] : []),
      ...(existsSync(wakeDirectory()) ? readdirSync(wakeDirectory()).filter((f) => f.startsWith(fifoPrefix)) : []),
      ...[defaultCredentialPath(region), defaultSecretPath(region)].filter((p) => existsSync(p))
    ]
    expect(left).toEqual([])
  })

describe("a role whose orchestrator was SIGKILLed", () => {
  it.scopedLive(
    "an event reported to the dead parent (EPIPE on the IPC channel) does not end the role",
    () =>
      Effect.gen(function*() {
        const file = join(yield* tempDir("cxlog-orphan-"), "survived")
        const parent = yield* spawnFixture("orphaning-parent", [file, "report"])
        const { pid } = yield* parent.next<{ pid: number }>(60_000)
        yield* Effect.addFinalizer(() => Effect.sync(() => running(pid) && process.kill(pid, "SIGKILL")))
        parent.process.kill("SIGKILL")
        yield* Effect.sync(() => running(pid)).pipe(
          Effect.repeat({ while: (alive) => alive, schedule: Schedule.spaced("100 millis") }),
          Effect.timeoutFail({
            duration: "30 seconds",
            onTimeout: () => new Error(`reporter ${pid} still runs 30 s after its parent was SIGKILLed`)
          })
        )
        expect(existsSync(file)).toBe(true)
      }),
    90_000
  )

  it.scopedLive(
    "killed while the head starts: the head ends and leaves no region, FIFO or credential file",
    () => orphanedHead("start"),
    90_000
  )
  it.scopedLive(
    "killed once the head is ready: the head ends and leaves no region, FIFO or credential file",
    () => orphanedHead("ready"),
    90_000
  )
})
