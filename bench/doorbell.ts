/**
 * bench doorbell: cross-process wake latency. Two processes ping-pong through futex
 * doorbells in one region, once parking at once and once spinning briefly first (the
 * waiting strategy cxlog uses); the same run measures a `process.send` round trip.
 * `ratio` = process.send p50 / doorbell (spin-then-park) p50.
 */
import { Effect } from "effect"
import { fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as CxlMemoryLayers from "../src/layers/CxlMemory.js"
import type { CxlMemoryShape } from "../src/services/CxlMemory.js"
import { emit, summarize, table } from "./Report.js"

const PING = 8192
const PONG = 8256
const SPIN_NS = 50_000

/**
 * Waits until the word at `offset` differs from `seen`: spins for up to `spinNs` on the JS
 * thread (0 = park at once), then parks on the word's doorbell.
 */
const awaitChange = (region: CxlMemoryShape, offset: number, seen: number, spinNs: number) =>
  Effect.gen(function*() {
    const index = offset / 4
    if (spinNs > 0) {
      const until = process.hrtime.bigint() + BigInt(spinNs)
      while (process.hrtime.bigint() < until) {
        const now = Atomics.load(region.i32, index)
        if (now !== seen) return now
      }
    }
    for (;;) {
      const now = Atomics.load(region.i32, index)
      if (now !== seen) return now
      yield* region.wait(offset, seen, 1_000)
    }
  })

const peer = (name: string, spinNs: number) =>
  Effect.scoped(Effect.gen(function*() {
    const region = yield* CxlMemoryLayers.make({ name, mode: "attach" })
    process.send!("ready")
    let seen = 0
    for (;;) {
      seen = yield* awaitChange(region, PING, seen, spinNs)
      if (seen < 0) return
      Atomics.store(region.i32, PONG / 4, seen)
      region.wake(PONG)
    }
  }))

export const run = (args: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const rounds = Number(args.find((a) => a.startsWith("--rounds="))?.slice(9) ?? 20_000)
    const pingPong = (spinNs: number) =>
      Effect.scoped(Effect.gen(function*() {
        const name = `cxlog-bench-doorbell-${process.pid}-${spinNs}`
        const region = yield* CxlMemoryLayers.make({ name, size: 1 << 20, mode: "create" })
        const child = yield* Effect.acquireRelease(
          Effect.sync(() =>
            fork(fileURLToPath(import.meta.url), ["--peer", name, `${spinNs}`], { stdio: ["ignore", "inherit", "inherit", "ipc"] })
          ),
          (c) => Effect.sync(() => void c.kill("SIGKILL"))
        )
        yield* Effect.async<void>((resume) => {
          child.once("message", () => resume(Effect.void))
        })
        const samples: Array<number> = []
        for (let i = 1; i <= rounds; i++) {
          const t0 = process.hrtime.bigint()
          Atomics.store(region.i32, PING / 4, i)
          region.wake(PING)
          yield* awaitChange(region, PONG, i - 1, spinNs)
          samples.push(Number(process.hrtime.bigint() - t0) / 1000)
        }
        Atomics.store(region.i32, PING / 4, -1)
        region.wake(PING)
        return samples
      }))
    const parked = yield* pingPong(0)
    const spinning = yield* pingPong(SPIN_NS)

    const echo = yield* Effect.acquireRelease(
      Effect.sync(() => fork(fileURLToPath(import.meta.url), ["--echo"], { stdio: ["ignore", "inherit", "inherit", "ipc"] })),
      (c) => Effect.sync(() => void c.kill("SIGKILL"))
    )
    const ipc: Array<number> = []
    yield* Effect.async<void>((resume) => {
      echo.once("message", () => resume(Effect.void))
    })
    for (let i = 1; i <= rounds; i++) {
      const t0 = process.hrtime.bigint()
      yield* Effect.async<void>((resume) => {
        echo.once("message", () => resume(Effect.void))
        echo.send(i)
      })
      ipc.push(Number(process.hrtime.bigint() - t0) / 1000)
    }

    const d = summarize(parked.slice(rounds / 10))
    const s = summarize(spinning.slice(rounds / 10))
    const p = summarize(ipc.slice(rounds / 10))
    const text = table(["round trip (µs)", "p50", "p99", "samples", "process.send p50 / this p50"], [
      ["doorbell, park at once (futex wait off the JS thread)", d.p50, d.p99, d.count, p.p50 / d.p50],
      [`doorbell, spin ${SPIN_NS / 1000} µs then park (cxlog default)`, s.p50, s.p99, s.count, p.p50 / s.p50],
      ["process.send (child_process IPC)", p.p50, p.p99, p.count, 1]
    ])
    emit(text, {
      bench: "doorbell",
      doorbellParkP50Us: d.p50,
      doorbellParkP99Us: d.p99,
      doorbellSpinP50Us: s.p50,
      doorbellSpinP99Us: s.p99,
      processSendP50Us: p.p50,
      processSendP99Us: p.p99,
      rounds,
      parkRatio: p.p50 / d.p50,
      ratio: p.p50 / s.p50
    })
  }))

if (process.argv[2] === "--peer") {
  Effect.runPromise(peer(process.argv[3]!, Number(process.argv[4]))).then(() => process.exit(0), (e) => {
    console.error(e)
    process.exit(1)
  })
} else if (process.argv[2] === "--echo") {
  process.on("message", (m) => process.send!(m))
  process.send!("ready")
}
