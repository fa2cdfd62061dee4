/**
 * `cxlog bench --type supervisor`: from a supervised child's SIGKILL to its replacement serving
 * again, as a caller sees it. A head (`cxlog head`) owns the region; this process supervises one
 * child (`cxlog bench-service-server`, which serves "bench" by name: ServiceBench.ts), restart
 * policy `always` with a 10 ms backoff, and SIGKILLs it `--kills` times; after each kill it calls
 * "bench" until the replacement answers. Reported next to it: the supervisor's own part (kill to
 * the replacement spawned: its exit seen and the backoff) and, as the reference measured in the
 * same run, the first start (spawn to serving), which no kill precedes.
 */
import { Console, Context, Effect, Layer, Schedule, Stream } from "effect"
import { availableParallelism } from "node:os"
import * as SupervisorLayers from "../../layers/ipc/Supervisor.js"
import { ipcMember } from "../../layers/Roles.js"
import { Services } from "../../services/ipc/Services.js"
import { Supervisor } from "../../services/ipc/Supervisor.js"
import { cliEntry } from "../ProgramSettings.js"
import { percentile } from "../report/Percentiles.js"
import { table } from "../report/Table.js"
import { benchHead } from "./BenchHead.js"
import { BenchPeerFailed } from "./Loopback.js"
import { Echo, SERVICE } from "./ServiceBench.js"

export interface SupervisorBenchOptions {
  readonly kills: number
  readonly json: boolean
}

const BACKOFF_MS = 10
/** A replacement that does not serve within this fails the bench rather than hang it. */
const WAIT_MS = 30_000

const ms = (values: ReadonlyArray<number>, p: number) =>
  Math.round(percentile(Float64Array.from(values).sort(), p) * 10) / 10

export const benchSupervisor = (options: SupervisorBenchOptions) =>
  Effect.gen(function*() {
    const measured = yield* Effect.scoped(Effect.gen(function*() {
      const { env, region } = yield* benchHead("supervisor-bench")
      const supervisor = Context.get(yield* Layer.build(SupervisorLayers.layer), Supervisor)
      /** When each child pid was spawned (performance.now() ms), from the supervisor's ChildStarted. */
      const spawnedAt = new Map<number, number>()
      yield* Effect.forkScoped(Stream.runForEach(supervisor.events, (event) =>
        Effect.sync(() => {
          if (event._tag === "ChildStarted") spawnedAt.set(event.pid, performance.now())
        })))
      const services = Context.get(yield* Layer.build(ipcMember({ name: region })), Services)
      const startedAt = performance.now()
      yield* supervisor.start({
        name: "server",
        script: cliEntry(),
        args: ["bench-service-server"],
        env,
        restart: "always",
        backoffMs: BACKOFF_MS,
        restartLimit: options.kills + 1,
        output: "ignore"
      })
      const bounded = <A, E, R>(waitedFor: string, effect: Effect.Effect<A, E, R>) =>
        effect.pipe(
          Effect.retry({ schedule: Schedule.spaced("2 millis") }),
          Effect.timeoutFail({
            duration: WAIT_MS,
            onTimeout: () => new BenchPeerFailed({ waitedFor, detail: `none within ${WAIT_MS} ms` })
          })
        )
      const client = yield* bounded("the supervised server's service", services.connect(SERVICE))
      const serving = (waitedFor: string) => bounded(waitedFor, client.call(Echo, "x", { timeoutMs: 1_000 }))
      yield* serving("the first answer")
      const firstStartMs = performance.now() - startedAt
      const toServing: Array<number> = []
      const toRespawn: Array<number> = []
      for (let kill = 0; kill < options.kills; kill++) {
        const pid = (yield* supervisor.children)[0]?.pid
        if (pid === undefined) return yield* new BenchPeerFailed({ waitedFor: "the server", detail: "not running" })
        const killedAt = performance.now()
        process.kill(pid, "SIGKILL")
        yield* serving(`an answer after kill ${kill + 1}`)
        toServing.push(performance.now() - killedAt)
        const replacement = (yield* supervisor.children)[0]?.pid
        const spawned = replacement === undefined ? undefined : spawnedAt.get(replacement)
        if (spawned !== undefined) toRespawn.push(spawned - killedAt)
      }
      return { firstStartMs, toServing, toRespawn }
    }))
    const result = {
      bench: "cxlog-supervisor",
      kills: options.kills,
      backoffMs: BACKOFF_MS,
      cpus: availableParallelism(),
      restartServingP50Ms: ms(measured.toServing, 50),
      restartServingP99Ms: ms(measured.toServing, 99),
      respawnP50Ms: ms(measured.toRespawn, 50),
      firstStartServingMs: Math.round(measured.firstStartMs * 10) / 10
    }
    yield* options.json
      ? Console.log(JSON.stringify(result))
      : Console.log(
        table(["supervised child, policy always, backoff 10 ms", "p50 ms", "p99 ms"], [
          [
            `SIGKILL to its replacement serving again (${options.kills} kills)`,
            result.restartServingP50Ms,
            result.restartServingP99Ms
          ],
          ["SIGKILL to its replacement spawned (the supervisor's part)", result.respawnP50Ms, "-"],
          ["first start to serving (reference, one sample)", result.firstStartServingMs, "-"]
        ])
      )
    return result
  })
