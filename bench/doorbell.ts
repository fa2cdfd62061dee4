/**
 * bench doorbell: cross-process wake latency. Two processes ping-pong through one region:
 * raw futex words (a wait on libuv's thread pool, then a hop to the JS thread), parking at
 * once and spinning 50 µs first, for reference; then the Doorbell service itself (parked
 * processes woken through their wake FIFOs, watched on their own loops): parking at once
 * (the wake path alone), with its adaptive spin (the default; no spin while runnable tasks
 * outnumber the cores) and with a fixed 50 µs spin, alone and while two more process pairs
 * ping-pong the same way (6 processes: more than this machine's cores on small machines).
 * The same run measures a `process.send` round trip. `ratio` = process.send p50 / Doorbell
 * service (adaptive, alone) p50; `serviceParkRatio` the same for the service parking at once.
 * Flags: --rounds=N (default 20000; the contended rows use N/4).
 */
import { Effect } from "effect"
import { type ChildProcess, fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as CxlMemoryLayers from "../src/layers/region/CxlMemory.js"
import * as DoorbellLayers from "../src/layers/region/Doorbell.js"
import { CxlMemory, type CxlMemoryShape } from "../src/services/region/CxlMemory.js"
import type { DoorbellShape } from "../src/services/region/Doorbell.js"
import { emit, summarize, table } from "./Report.js"

const PING = 8192
const PONG = 8256
const SPIN_NS = 50_000
/** Process pairs ping-ponging besides the measured one in the contended rows. */
const BACKGROUND_PAIRS = 2

/** `park`: the service parking at once (spinMicros 0). */
type Policy = "adaptive" | "fixed" | "park"

/** One Doorbell-service pair's lines from `base`: ping, pong, the driver's and the peer's doorbells, a stop word. */
const pairLines = (base: number) => ({
  ping: base,
  pong: base + 64,
  driverBell: base + 128,
  peerBell: base + 192,
  stop: base + 256
})
const pairBase = (pair: number) => 16384 + pair * 512

const serviceDoorbell = (region: CxlMemoryShape, offset: number, policy: Policy) =>
  DoorbellLayers.make(
    policy === "park" ? { offset, spinMicros: 0 } : { offset, spinMicros: SPIN_NS / 1000, spinPolicy: policy }
  ).pipe(Effect.provideService(CxlMemory, region))

/** Answers every ping with a pong through the Doorbell service, until the ping goes negative. */
const servicePeer = (name: string, policy: Policy, base: number) =>
  Effect.scoped(Effect.gen(function*() {
    const region = yield* CxlMemoryLayers.make({ name, mode: "attach" })
    const lines = pairLines(base)
    const doorbell = yield* serviceDoorbell(region, lines.peerBell, policy)
    process.send!("ready")
    let seen = 0
    for (;;) {
      yield* doorbell.await(() => Atomics.load(region.i32, lines.ping / 4) !== seen, 1_000)
      seen = Atomics.load(region.i32, lines.ping / 4)
      if (seen < 0) return
      Atomics.store(region.i32, lines.pong / 4, seen)
      doorbell.ring(lines.driverBell)
    }
  }))

/** Pings `rounds` times (forever while the stop word is 0 when `rounds` is Infinity); returns each round trip in µs. */
const serviceDrive = (region: CxlMemoryShape, doorbell: DoorbellShape, base: number, rounds: number) =>
  Effect.gen(function*() {
    const lines = pairLines(base)
    const samples: Array<number> = []
    for (let i = 1; i <= rounds && Atomics.load(region.i32, lines.stop / 4) === 0; i++) {
      const t0 = process.hrtime.bigint()
      Atomics.store(region.i32, lines.ping / 4, i)
      doorbell.ring(lines.peerBell)
      yield* doorbell.await(() => Atomics.load(region.i32, lines.pong / 4) === i, 1_000)
      if (Number.isFinite(rounds)) samples.push(Number(process.hrtime.bigint() - t0) / 1000)
    }
    Atomics.store(region.i32, lines.ping / 4, -1)
    doorbell.ring(lines.peerBell)
    return samples
  })

const backgroundDriver = (name: string, policy: Policy, base: number) =>
  Effect.scoped(Effect.gen(function*() {
    const region = yield* CxlMemoryLayers.make({ name, mode: "attach" })
    const doorbell = yield* serviceDoorbell(region, pairLines(base).driverBell, policy)
    process.send!("ready")
    yield* serviceDrive(region, doorbell, base, Infinity)
  }))

const forkReady = (args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      fork(fileURLToPath(import.meta.url), [...args], { stdio: ["ignore", "inherit", "inherit", "ipc"] })
    ),
    (c) => Effect.sync(() => void c.kill("SIGKILL"))
  ).pipe(Effect.tap((child: ChildProcess) =>
    Effect.async<void>((resume) => void child.once("message", () => resume(Effect.void)))
  ))

/** The Doorbell service's round trip with `policy`, alone or beside BACKGROUND_PAIRS busy pairs. */
const servicePingPong = (policy: Policy, contended: boolean, rounds: number) =>
  Effect.scoped(Effect.gen(function*() {
    const name = `cxlog-bench-doorbell-${process.pid}-${policy}-${contended ? "contended" : "alone"}`
    const region = yield* CxlMemoryLayers.make({ name, size: 1 << 20, mode: "create" })
    // Runs after the peers are killed: SIGKILLed processes leave their wake FIFOs behind.
    yield* Effect.addFinalizer(() => Effect.sync(() => DoorbellLayers.removeWakeFifos(name)))
    const pairs = contended ? BACKGROUND_PAIRS : 0
    for (let pair = 1; pair <= pairs; pair++) {
      yield* forkReady(["--service-peer", name, policy, `${pairBase(pair)}`])
      yield* forkReady(["--service-driver", name, policy, `${pairBase(pair)}`])
    }
    yield* forkReady(["--service-peer", name, policy, `${pairBase(0)}`])
    const doorbell = yield* serviceDoorbell(region, pairLines(pairBase(0)).driverBell, policy)
    const samples = yield* serviceDrive(region, doorbell, pairBase(0), rounds)
    for (let pair = 1; pair <= pairs; pair++) Atomics.store(region.i32, pairLines(pairBase(pair)).stop / 4, 1)
    return samples
  }))

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
            fork(fileURLToPath(import.meta.url), ["--peer", name, `${spinNs}`], {
              stdio: ["ignore", "inherit", "inherit", "ipc"]
            })
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
    const contendedRounds = Math.ceil(rounds / 4)
    const service = {
      park: yield* servicePingPong("park", false, rounds),
      adaptive: yield* servicePingPong("adaptive", false, rounds),
      fixed: yield* servicePingPong("fixed", false, rounds),
      adaptiveContended: yield* servicePingPong("adaptive", true, contendedRounds),
      fixedContended: yield* servicePingPong("fixed", true, contendedRounds)
    }

    const echo = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(fileURLToPath(import.meta.url), ["--echo"], { stdio: ["ignore", "inherit", "inherit", "ipc"] })
      ),
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
    const k = summarize(service.park.slice(rounds / 10))
    const a = summarize(service.adaptive.slice(rounds / 10))
    const f = summarize(service.fixed.slice(rounds / 10))
    const ac = summarize(service.adaptiveContended.slice(contendedRounds / 10))
    const fc = summarize(service.fixedContended.slice(contendedRounds / 10))
    const contendedLabel = `beside ${BACKGROUND_PAIRS} more pairs`
    const text = table(["round trip (µs)", "p50", "p99", "samples", "process.send p50 / this p50"], [
      ["raw futex words, park at once (futex wait off the JS thread)", d.p50, d.p99, d.count, p.p50 / d.p50],
      [`raw futex words, spin ${SPIN_NS / 1000} µs then park`, s.p50, s.p99, s.count, p.p50 / s.p50],
      ["Doorbell service, park at once (wake FIFO on the JS thread's loop)", k.p50, k.p99, k.count, p.p50 / k.p50],
      ["Doorbell service, adaptive spin (cxlog default)", a.p50, a.p99, a.count, p.p50 / a.p50],
      [`Doorbell service, fixed ${SPIN_NS / 1000} µs spin`, f.p50, f.p99, f.count, p.p50 / f.p50],
      [`Doorbell service, adaptive spin, ${contendedLabel}`, ac.p50, ac.p99, ac.count, p.p50 / ac.p50],
      [
        `Doorbell service, fixed ${SPIN_NS / 1000} µs spin, ${contendedLabel}`,
        fc.p50,
        fc.p99,
        fc.count,
        p.p50 / fc.p50
      ],
      ["process.send (child_process IPC)", p.p50, p.p99, p.count, 1]
    ])
    emit(text, {
      bench: "doorbell",
      doorbellParkP50Us: d.p50,
      doorbellParkP99Us: d.p99,
      doorbellSpinP50Us: s.p50,
      doorbellSpinP99Us: s.p99,
      serviceParkP50Us: k.p50,
      serviceParkP99Us: k.p99,
      serviceAdaptiveP50Us: a.p50,
      serviceAdaptiveP99Us: a.p99,
      serviceFixedP50Us: f.p50,
      serviceFixedP99Us: f.p99,
      serviceAdaptiveContendedP50Us: ac.p50,
      serviceAdaptiveContendedP99Us: ac.p99,
      serviceFixedContendedP50Us: fc.p50,
      serviceFixedContendedP99Us: fc.p99,
      processSendP50Us: p.p50,
      processSendP99Us: p.p99,
      rounds,
      parkRatio: p.p50 / d.p50,
      spinRatio: p.p50 / s.p50,
      serviceParkRatio: p.p50 / k.p50,
      ratio: p.p50 / a.p50
    })
  }))

if (process.argv[2] === "--peer") {
  Effect.runPromise(peer(process.argv[3]!, Number(process.argv[4]))).then(() => process.exit(0), (e) => {
    console.error(e)
    process.exit(1)
  })
} else if (process.argv[2] === "--service-peer" || process.argv[2] === "--service-driver") {
  const [name, policy, base] = process.argv.slice(3) as [string, Policy, string]
  const role = process.argv[2] === "--service-peer" ? servicePeer : backgroundDriver
  Effect.runPromise(role(name, policy, Number(base))).then(() => process.exit(0), (e) => {
    console.error(e)
    process.exit(1)
  })
} else if (process.argv[2] === "--echo") {
  process.on("message", (m) => process.send!(m))
  process.send!("ready")
}
