/**
 * `cxlog bench --type service`: a service call by name between two processes, one at a time,
 * and an @effect/rpc call over the same kind of service (EffectRpc.ts), next to a `process.send`
 * round trip between the same two processes, the loops taking turns in blocks (Rtt.ts's
 * `interleaved`, so a burst of load on the shared machine weighs on all three). A head
 * (`cxlog head`) owns the region; a child (`cxlog bench-service-server`) serves "bench" with one
 * echo method, serves an @effect/rpc group with one echo as "bench-effect-rpc", and echoes IPC
 * messages; this process calls both by name. `rpcRatio` and `effectRpcRatio` = `process.send`
 * p50 ÷ the call's p50 (higher is better; the goal is ≥ 2).
 */
import { Rpc as EffectRpc, RpcClient, RpcGroup, RpcSerialization, RpcServer } from "@effect/rpc"
import { Console, Context, Effect, Layer, Schema } from "effect"
import { fork } from "node:child_process"
import { availableParallelism } from "node:os"
import { layerProtocolClient, layerProtocolServer } from "../../layers/ipc/EffectRpc.js"
import { ipcMember } from "../../layers/Roles.js"
import { handle, method } from "../../services/control/Rpc.js"
import { Services } from "../../services/ipc/Services.js"
import { REGION_SETTINGS } from "../../services/region/RegionSettings.js"
import { processEnvironment, readSetting } from "../../Settings.js"
import { cliEntry } from "../ProgramSettings.js"
import { table } from "../report/Table.js"
import { benchHead } from "./BenchHead.js"
import { BenchPeerFailed } from "./Loopback.js"
import { interleaved, latencyMicros } from "./Rtt.js"

export interface ServiceBenchOptions {
  readonly samples: number
  readonly messageBytes: number
  readonly json: boolean
}

export const SERVICE = "bench"
export const Echo = method("echo", { payload: Schema.String, success: Schema.String })
const EFFECT_RPC_SERVICE = "bench-effect-rpc"
class EchoRpcs
  extends RpcGroup.make(EffectRpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String }))
{}
/** The child's start, and any round trip, that takes longer than this fails the bench rather than hang it. */
const WAIT_MS = 20_000

/** The server's side (`cxlog bench-service-server`): serves the echo by name and echoes IPC messages, until killed. */
export const serviceBenchServer = Effect.scoped(Effect.gen(function*() {
  const region = readSetting(REGION_SETTINGS.settings.name)
  const member = yield* Layer.build(ipcMember({ name: region }))
  yield* Context.get(member, Services).serve(SERVICE, [handle(Echo, (text) => Effect.succeed(text))])
  yield* Layer.build(
    RpcServer.layer(EchoRpcs).pipe(
      Layer.provide(EchoRpcs.toLayer({ Echo: ({ text }) => Effect.succeed(text) })),
      Layer.provide(layerProtocolServer(EFFECT_RPC_SERVICE)),
      Layer.provide(RpcSerialization.layerJson),
      Layer.provide(Layer.succeedContext(member))
    )
  )
  process.on("message", (m) => process.send?.(m))
  process.on("disconnect", () => process.exit(0))
  process.send?.({ ready: true })
  return yield* Effect.never
}))

const childFailed = (waitedFor: string, detail: string) => new BenchPeerFailed({ waitedFor, detail })

export const benchService = (options: ServiceBenchOptions) =>
  Effect.gen(function*() {
    const [callTimes, sendTimes, effectRpcTimes] = yield* Effect.scoped(Effect.gen(function*() {
      const { env, region } = yield* benchHead("service-bench")
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
      const member = yield* Layer.build(ipcMember({ name: region }))
      const client = yield* Context.get(member, Services).connect(SERVICE, { timeoutMs: WAIT_MS })
      const effectRpc = yield* RpcClient.make(EchoRpcs).pipe(
        Effect.provide(
          yield* Layer.build(
            layerProtocolClient(EFFECT_RPC_SERVICE, { timeoutMs: WAIT_MS }).pipe(
              Layer.provide(RpcSerialization.layerJson),
              Layer.provide(Layer.succeedContext(member))
            )
          )
        )
      )
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
      const effectRpcEcho = effectRpc.Echo({ text }).pipe(
        Effect.timeoutFail({ duration: WAIT_MS, onTimeout: () => childFailed("an @effect/rpc echo", "none") })
      )
      const loops: ReadonlyArray<Effect.Effect<unknown, unknown>> = [client.call(Echo, text), send, effectRpcEcho]
      return yield* interleaved(loops, options.samples, 1)
    }))
    const call = latencyMicros(callTimes!)
    const processSend = latencyMicros(sendTimes!)
    const viaEffectRpc = latencyMicros(effectRpcTimes!)
    const result = {
      bench: "cxlog-service",
      messageBytes: options.messageBytes,
      samples: options.samples,
      cpus: availableParallelism(),
      rpcP50Us: call.p50,
      rpcP99Us: call.p99,
      processSendP50Us: processSend.p50,
      processSendP99Us: processSend.p99,
      rpcRatio: Math.round((processSend.p50 / call.p50) * 1000) / 1000,
      effectRpcP50Us: viaEffectRpc.p50,
      effectRpcP99Us: viaEffectRpc.p99,
      effectRpcRatio: Math.round((processSend.p50 / viaEffectRpc.p50) * 1000) / 1000
    }
    yield* options.json
      ? Console.log(JSON.stringify(result))
      : Console.log(
        table(["one at a time, two processes", "p50 µs", "p99 µs", "p99.9 µs"], [
          [`service call by name (cxlog Rpc), ${options.messageBytes} B`, call.p50, call.p99, call.p999],
          [
            `@effect/rpc call by name over rings (JSON), ${options.messageBytes} B`,
            viaEffectRpc.p50,
            viaEffectRpc.p99,
            viaEffectRpc.p999
          ],
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
