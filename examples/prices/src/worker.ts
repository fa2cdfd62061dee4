/**
 * A prices worker as a Node program, as `cxlog app start app.json` runs it: its name is its
 * spec's in the app file (CXLOG_SUPERVISED_NAME `acme#0` → `acme`), its symbols `PRICES_SYMBOLS`
 * (comma-separated). A member of region CXLOG_REGION; SIGTERM closes its scope.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Config, Effect } from "effect"
import { memberLayers } from "./Member.js"
import { worker } from "./Prices.js"

const program = Effect.gen(function*() {
  const name = (yield* Config.string("CXLOG_SUPERVISED_NAME").pipe(Config.withDefault("worker"))).split("#")[0]!
  const symbols = (yield* Config.string("PRICES_SYMBOLS")).split(",")
  yield* Effect.log(`${name}: publishing ${symbols.join(", ")}, serving quotes.${name}`)
  yield* worker(name, symbols, { everyMs: 500 })
})

NodeRuntime.runMain(Effect.flatMap(memberLayers, (layers) => program.pipe(Effect.scoped, Effect.provide(layers))))
