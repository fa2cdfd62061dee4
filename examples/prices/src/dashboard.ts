/**
 * The prices dashboard as a Node program: prints each symbol's latest price off the channel and,
 * every few values, what each worker (`PRICES_WORKERS`, comma-separated) answers for it; at its
 * stop, how many prices it handled in all (under the app's draining shutdown, every one published).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Config, Effect } from "effect"
import { memberLayers } from "./Member.js"
import { dashboard } from "./Prices.js"

const program = Effect.gen(function*() {
  const workers = (yield* Config.string("PRICES_WORKERS").pipe(Config.withDefault("acme,bolt"))).split(",")
  // Added before the dashboard's consumer: it runs after the consumer has handled every price left at a stop.
  yield* Effect.addFinalizer(() => Effect.log(`stopped: ${handled()} prices handled`))
  const { handled, quote, read } = yield* dashboard()
  while (true) {
    const board = yield* read(4, 60_000)
    for (const price of board.values()) {
      const answers = yield* Effect.forEach(workers, (w) =>
        quote(w, price.symbol).pipe(
          Effect.map((p) => `${w}: ${p.price.toFixed(2)}`),
          Effect.catchTag("UnknownSymbol", () => Effect.succeed(`${w}: -`)),
          // A worker down (restarting, say) is shown as such; the dashboard goes on.
          Effect.catchAll((e) => Effect.succeed(`${w}: ${e._tag}`))
        ))
      yield* Effect.log(`${price.symbol} ${price.price.toFixed(2)} (tick ${price.tick}); ${answers.join(", ")}`)
    }
  }
})

NodeRuntime.runMain(Effect.flatMap(memberLayers, (layers) => program.pipe(Effect.scoped, Effect.provide(layers))))
