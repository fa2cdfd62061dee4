/**
 * `cxlog bench --type service`: a service call by name between two processes, one at a time,
 * next to a `process.send` round trip between the same two processes, the loops taking turns in
 * blocks (Rtt.ts's `interleaved`, so a burst of load on the shared machine weighs on both). A head
 * (`cxlog head`) owns the region; a child (`cxlog bench-service-server`) serves "bench" with one
 * echo method and echoes IPC messages; this process calls it by name. `rpcRatio` =
 * `process.send` p50 ÷ call p50 (higher is better; the goal is ≥ 2).
 */
import { Console, Context, Effect, Layer, Schema } from "effect"
import { fork } from "node:child_process"
import { availableParallelism } from "node:os"
import { ipcMember } from "../../layers/Roles.js"
import { handle, method } from "../../services/control/Rpc.js"
import { Services } from "../../services/ipc/Services.js"
import { REGION_SETTINGS } from "../../services/region/RegionSettings.js"
import { processEnvironment, readSetting } from "../../Settings.js"
import { pruneRunRegions, runRegionName } from "../admin/Regions.js"
import { cliEntry } from "../ProgramSettings.js"
import { table } from "../report/Table.js"
import { regionGuard, startHeadAndBrokers } from "../run/Cluster.js"
import { logEnv } from "../run/Run.js"
import { BenchPeerFailed } from "./Loopback.js"
import { interleaved, latencyMicros } from "./Rtt.js"

export interface ServiceBenchOptions {
  readonly samples: number
  readonly messageBytes: number
  readonly json: boolean
}

const SERVICE = "bench"
const Echo = method("echo", { payload: Schema.String, success: Schema.String })
/** The child's start, and any round trip, that takes longer than this fails the bench rather than hang it. */
const WAIT_MS = 20_000

/** The server's side (`cxlog bench-service-server`): serves the echo by name and echoes IPC messages, until killed. */
export const serviceBenchServer = Effect.scoped(Effect.gen(function*() {
  const region = readSetting(REGION_SETTINGS.settings.name)
  const services = Context.get(yield* Layer.build(ipcMember({ name: region })), Services)
  yield* services.serve(SERVICE, [handle(Echo, (text) => Effect.succeed(text))])
  process.on("message", (m) => process.send?.(m))
  process.on("disconnect", () => process.exit(0))
  process.send?.({ ready: true })
  return yield* Effect.never
}))

const childFailed = (waitedFor: string, detail: string) => new BenchPeerFailed({ waitedFor, detail })

export const benchService = (options: ServiceBenchOptions) =>
  Effect.gen(function*() {
    const [callTimes, sendTimes] = yield* Effect.scoped(Effect.gen(function*() {
      yield* pruneRunRegions
      const region = runRegionName(process.pid)
      const env = {
        ...logEnv({ brokers: 1, batchBytes: 64 << 10, local: false, localPublishers: 0 }),
        CXLOG_REGION: region
      }
      yield* regionGuard(region)
      yield* startHeadAndBrokers("service-bench", 0, env)
      const child = yield* Effect.acquireRelease(
        Effect.sync(() =>
          fork(cliEntry(), ["bench-service-server"], {
            stdio: ["ignore", "ignore", "inherit", "ipc"],
            env: { ...processEnvironment(), ...env }
          })
        ),
        (c) => Effect.sync(() => void c.kill("SIGKILL"))
      )
      yield* Effect.async<void, BenchPeerFailed>((resume) => {
        child.once("message", () => resume(Effect.void))
        child.once("exit", (code, signal) =>
          resume(Effect.fail(childFailed("the service's server", `it exited (${code ?? signal})`))))
      }).pipe(Effect.timeoutFail({
        duration: WAIT_MS,
        onTimeout: () =>
          childFailed("the service's server", "not ready")
      }))
      const services = Context.get(yield* Layer.build(ipcMember({ name: region })), Services)
      const client = yield* services.connect(SERVICE, { timeoutMs: WAIT_MS })
      const text = "x".repeat(options.messageBytes)
      let arrived: ((outcome: Effect.Effect<void>) => void) | undefined
      child.on("message", () => {
        const done = arrived
        arrived = undefined
        done?.(Effect.void)
      })
      const send = Effect.async<void>((resume) => {
        arrived = resume
        child.send(text)
      }).pipe(Effect.timeoutFail({ duration: WAIT_MS, onTimeout: () => childFailed("an IPC echo", "none") }))
      const loops: ReadonlyArray<Effect.Effect<unknown, unknown>> = [client.call(Echo, text), send]
      return yield* interleaved(loops, options.samples, 1)
    }))
    const call = latencyMicros(callTimes!)
    const processSend = latencyMicros(sendTimes!)
    const result = {
      bench: "cxlog-service",
      messageBytes: options.messageBytes,
      samples: options.samples,
      cpus: availableParallelism(),
      rpcP50Us: call.p50,
      rpcP99Us: call.p99,
      processSendP50Us: processSend.p50,
      processSendP99Us: processSend.p99,
      rpcRatio: Math.round((processSend.p50 / call.p50) * 1000) / 1000
    }
    yield* options.json
      ? Console.log(JSON.stringify(result))
      : Console.log(
        table(["one at a time, two processes", "p50 µs", "p99 µs", "p99.9 µs"], [
          [`service call by name (cxlog Rpc), ${options.messageBytes} B`, call.p50, call.p99, call.p999],
          [
            `process.send round trip, ${options.messageBytes} B (reference)`,
            processSend.p50,
            processSend.p99,
            processSend.p999
          ]
        ])
      )
    return result
  })
