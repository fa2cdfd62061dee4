/**
 * bench barrier: barrier round-trip latency with 4 participant processes, for each mode,
 * idle and while every participant streams frames into a ring its neighbour reads, and the
 * coordinator RPC round trip (a `members` call). The reference, measured in the same run by
 * the same processes, is a `process.send` round trip between each participant and the head,
 * all four at once: it tracks how loaded the machine is, so ratios compare across runs. The
 * head's own coordinator client then times the same RPC in-process, alone.
 * Every phase first runs `--warmup=N` untimed rounds (default 200), so V8 has optimized the
 * path it measures; participants stream only in the streaming rows.
 * `ratio` = process.send p50 / idle delivery-fence p50; `rpcRatio` = process.send p50 / RPC p50.
 * `perOp` (Linux): per timed round of each row, a participant's CPU µs and the times its JS
 * thread slept (each a wake someone paid for), and the head's, from /proc — what a round costs,
 * which moves far less with the machine's load than its latency does.
 * `--only=KEY,...` runs only those rows (`ipc`, `rpc`, `MODE/LOAD` such as `delivery-fence/idle`),
 * for a profile or a system-call trace of one path; the others are reported as absent.
 */
import { Effect, Fiber, Layer } from "effect"
import { fork } from "node:child_process"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as CoordinatorLayers from "../src/layers/control/Coordinator.js"
import { defaultTopicBytes, oneBrokerLogConfig } from "../src/layers/log/LogRegion.js"
import * as TopicsLayers from "../src/layers/log/Topics.js"
import { defaultControlConfig, type RegionConfig, RegionLayout } from "../src/layers/RegionLayout.js"
import * as Roles from "../src/layers/Roles.js"
import { type BarrierMode, Coordinator } from "../src/services/control/Coordinator.js"
import { Rings } from "../src/services/control/Rings.js"
import { emit, summarize, table } from "./Report.js"

const PARTICIPANTS = 4
const FRAME_BYTES = 256
const MODES: ReadonlyArray<BarrierMode> = ["rendezvous", "delivery-fence", "processing-fence"]

const log = oneBrokerLogConfig

const config: RegionConfig = {
  directory: { entrySlots: 16, holderLines: 4, heapBytes: defaultTopicBytes(log) },
  control: { ...defaultControlConfig, maxProcesses: 8, appRings: PARTICIPANTS, appRingBytes: 1 << 20 },
  log
}

const topics = Layer.unwrapEffect(Effect.map(RegionLayout, (l) => TopicsLayers.layer(l.log)))

interface Samples {
  readonly key: string
  readonly micros: ReadonlyArray<number>
  readonly perOp?: PerOp
}

interface PerOp {
  readonly participantCpuUs: number
  readonly participantSleeps: number
  readonly headCpuUs: number
  readonly headSleeps: number
}

/** CPU µs (utime + stime, 10 ms ticks) and voluntary context switches of `pid`'s main thread; NaN where /proc is missing. */
const usageOf = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1").split(") ")[1]!.split(" ")
    const status = readFileSync(`/proc/${pid}/status`, "latin1")
    return {
      cpuUs: (Number(stat[11]) + Number(stat[12])) * 10_000,
      sleeps: Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1])
    }
  } catch {
    return { cpuUs: NaN, sleeps: NaN }
  }
}

/** Runs `rounds` timed rounds of `once` and what they cost per round (see `perOp`). */
const measured = <E>(rounds: number, once: Effect.Effect<number, E>) =>
  Effect.gen(function*() {
    const [self0, head0] = [usageOf(process.pid), usageOf(process.ppid)]
    const micros: Array<number> = []
    for (let i = 0; i < rounds; i++) micros.push(yield* once)
    const [self1, head1] = [usageOf(process.pid), usageOf(process.ppid)]
    const perOp: PerOp = {
      participantCpuUs: (self1.cpuUs - self0.cpuUs) / rounds,
      participantSleeps: (self1.sleeps - self0.sleeps) / rounds,
      headCpuUs: (head1.cpuUs - head0.cpuUs) / rounds,
      headSleeps: (head1.sleeps - head0.sleeps) / rounds
    }
    return { micros, perOp }
  })

/** One participant: RPC round trips, then every (mode, load) configuration, in lockstep with the others. */
const participant = (
  region: string,
  index: number,
  rounds: number,
  warmup: number,
  only: ReadonlySet<string> | undefined
) =>
  Effect.gen(function*() {
    const coordinator = yield* Coordinator
    const rings = yield* Rings
    const layout = yield* RegionLayout
    yield* coordinator.joinGroup("bench")
    while ((yield* coordinator.members("bench")).length < PARTICIPANTS) yield* Effect.sleep("5 millis")
    const samples: Array<Samples> = []
    const time = <A, E>(effect: Effect.Effect<A, E>) =>
      Effect.gen(function*() {
        const t0 = process.hrtime.bigint()
        yield* effect
        return Number(process.hrtime.bigint() - t0) / 1000
      })
    const echo = (i: number) =>
      Effect.async<void>((resume) => {
        process.once("message", () => resume(Effect.void))
        process.send!({ ping: i })
      })
    // Each phase runs `warmup` untimed rounds first: V8 still optimizes the path for a few hundred.
    const wanted = (key: string) => only === undefined || only.has(key)
    if (wanted("ipc")) {
      for (let i = 0; i < warmup; i++) yield* echo(i)
      let n = 0
      samples.push({ key: "ipc", ...yield* measured(rounds, Effect.suspend(() => time(echo(n++)))) })
    }
    if (wanted("rpc")) {
      for (let i = 0; i < warmup; i++) yield* coordinator.members("bench")
      samples.push({ key: "rpc", ...yield* measured(rounds, time(coordinator.members("bench"))) })
    }

    // Streaming load: write 256-byte frames to my ring; read my neighbour's ring.
    const writer = yield* rings.writer(layout.appRing(index))
    const reader = yield* rings.reader(layout.appRing((index + 1) % PARTICIPANTS))
    yield* reader.consume(() => Effect.void).pipe(Effect.forkScoped)
    // The writer runs only while streaming: idle rows measure a cluster with nothing else to do.
    const stream = Effect.gen(function*() {
      for (;;) {
        for (let k = 0; k < 32 && writer.tryReserve(FRAME_BYTES) >= 0; k++);
        writer.commit()
        yield* Effect.sleep("200 micros")
      }
    })

    for (const load of ["idle", "streaming"] as const) {
      if (!MODES.some((mode) => wanted(`${mode}/${load}`))) continue
      const streamer = load === "streaming" ? yield* Effect.fork(stream) : undefined
      for (const mode of MODES) {
        if (!wanted(`${mode}/${load}`)) continue
        const name = `${mode}-${load}`
        for (let i = 0; i < Math.max(1, warmup); i++) {
          yield* coordinator.barrier(`${name}-warm`, { mode, group: "bench", timeoutMs: 30_000 })
        }
        samples.push({
          key: `${mode}/${load}`,
          ...yield* measured(rounds, time(coordinator.barrier(name, { mode, group: "bench", timeoutMs: 30_000 })))
        })
      }
      if (streamer !== undefined) {
        yield* Fiber.interrupt(streamer)
      }
    }
    // Nobody leaves before everyone has counted the group full (with `--only` and no barrier row, one could wait for a member already gone).
    yield* coordinator.barrier("bench-end", { mode: "rendezvous", group: "bench", timeoutMs: 30_000 })
    process.send!({ samples })
  }).pipe(
    Effect.scoped,
    Effect.provide(
      Roles.coordinatorClient().pipe(
        Layer.provideMerge(Roles.controlTransport),
        Layer.provideMerge(Roles.processSlot("worker")),
        Layer.provideMerge(Roles.attachRegion({ name: region }))
      )
    )
  )

export const run = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const rounds = Number(args.find((a) => a.startsWith("--rounds="))?.slice(9) ?? 500)
    const warmup = Number(args.find((a) => a.startsWith("--warmup="))?.slice(9) ?? 200)
    const only = args.find((a) => a.startsWith("--only="))?.slice(7)
    const region = `cxlog-bench-barrier-${process.pid}`
    const children = Array.from({ length: PARTICIPANTS }, (_, i) => i)
    const collected = yield* Effect.forEach(
      children,
      (i) =>
        Effect.acquireRelease(
          Effect.sync(() =>
            fork(fileURLToPath(import.meta.url), [
              "--participant",
              region,
              `${i}`,
              `${rounds}`,
              `${warmup}`,
              ...(only === undefined ? [] : [only])
            ], { stdio: "inherit" })
          ),
          (c) => Effect.sync(() => void c.kill("SIGKILL"))
        ).pipe(
          Effect.flatMap((child) =>
            Effect.async<ReadonlyArray<Samples>, Error>((resume) => {
              child.on("message", (m: { samples: ReadonlyArray<Samples> } | { ping: number }) => {
                if ("ping" in m) child.send(m)
                else resume(Effect.succeed(m.samples))
              })
              child.once("exit", (code) => resume(Effect.fail(new Error(`participant ${i} exited with ${code}`))))
            })
          )
        ),
      { concurrency: "unbounded" }
    )
    // The same call from the head's own client: RPC over rings with no process hop.
    const inProcess = yield* Effect.scoped(Effect.gen(function*() {
      const coordinator = yield* CoordinatorLayers.makeClient()
      const micros: Array<number> = []
      for (let i = 0; i < warmup; i++) yield* coordinator.members()
      for (let i = 0; i < rounds; i++) {
        const t0 = process.hrtime.bigint()
        yield* coordinator.members()
        micros.push(Number(process.hrtime.bigint() - t0) / 1000)
      }
      return summarize(micros.slice(rounds / 10))
    }))
    const merged = (key: string) =>
      summarize(collected.flatMap((s) => s.find((x) => x.key === key)?.micros.slice(rounds / 10) ?? []))
    const ipc = merged("ipc")
    const rpc = merged("rpc")
    const rows = MODES.flatMap((mode) =>
      ["idle", "streaming"].map((load) => ({ mode, load, ...merged(`${mode}/${load}`) }))
    )
    const text = table(
      ["round trip (µs), 4 processes at once", "p50", "p99", "samples", "process.send p50 / this p50"],
      [
        ...rows.map((r) => [`barrier: ${r.mode}, ${r.load}`, r.p50, r.p99, r.count, ipc.p50 / r.p50]),
        ["coordinator RPC (members)", rpc.p50, rpc.p99, rpc.count, ipc.p50 / rpc.p50],
        [
          "coordinator RPC (members), head's own client, alone",
          inProcess.p50,
          inProcess.p99,
          inProcess.count,
          ipc.p50 / inProcess.p50
        ],
        ["process.send, participant ↔ head (reference)", ipc.p50, ipc.p99, ipc.count, 1]
      ].filter((row) => row[3] !== 0)
    ) // rows left out by --only
    const idleFence = rows.find((r) => r.mode === "delivery-fence" && r.load === "idle")!
    // Participants' own figures: their median; the head's: as participant 0 measured it (rounds run in lockstep).
    const perOp = (key: string) => {
      const all = collected.flatMap((s) => s.find((x) => x.key === key)?.perOp ?? [])
      const median = (f: (p: PerOp) => number) => summarize(all.map(f)).p50
      const first = collected[0]?.find((x) => x.key === key)?.perOp
      return {
        participantCpuUs: median((p) => p.participantCpuUs),
        participantSleeps: median((p) => p.participantSleeps),
        headCpuUs: first?.headCpuUs ?? NaN,
        headSleeps: first?.headSleeps ?? NaN
      }
    }
    emit(text, {
      bench: "barrier",
      participants: PARTICIPANTS,
      rounds,
      warmup,
      processSendP50Us: ipc.p50,
      processSendP99Us: ipc.p99,
      rpcP50Us: rpc.p50,
      rpcP99Us: rpc.p99,
      rpcInProcessP50Us: inProcess.p50,
      rpcInProcessP99Us: inProcess.p99,
      ...Object.fromEntries(
        rows.flatMap((r) => [[`${r.mode}-${r.load}-p50Us`, r.p50], [`${r.mode}-${r.load}-p99Us`, r.p99]])
      ),
      rpcRatio: ipc.p50 / rpc.p50,
      ratio: ipc.p50 / idleFence.p50,
      perOp: Object.fromEntries(
        ["ipc", "rpc", ...rows.map((r) => `${r.mode}/${r.load}`)].map((key) => [key, perOp(key)])
      )
    })
  }).pipe(
    Effect.scoped,
    Effect.provide(
      Roles.coordinatorServer({ checkEveryMs: 100 }).pipe(
        Layer.provideMerge(topics),
        Layer.provideMerge(Roles.controlTransport),
        Layer.provideMerge(Roles.processSlot("head", 0)),
        Layer.provideMerge(Roles.createRegion({ name: `cxlog-bench-barrier-${process.pid}` }, config))
      )
    )
  )

if (process.argv[2] === "--participant") {
  const [region, index, rounds, warmup, only] = process.argv.slice(3)
  Effect.runPromise(
    participant(
      region!,
      Number(index),
      Number(rounds),
      Number(warmup),
      only === undefined ? undefined : new Set(only.split(","))
    )
  ).then(() => process.exit(0), (error) => {
    console.error(error)
    process.exit(1)
  })
}
