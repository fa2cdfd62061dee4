/**
 * The prices app's domain: workers publish prices on channel `prices` and answer, by name
 * (`quotes.<worker>`), the latest price they published for a symbol; a dashboard follows the
 * channel and asks the workers. Both take part in the app's draining shutdown (`drainOnStop`):
 * stopped together by their supervisor, the dashboard handles every price the workers published
 * before it exits. It asks for cxlog's `Channels`, `Services` and `Coordinator` and nothing else,
 * so the programs run it over a region and the tests over the in-memory fakes.
 */
import { type ChannelMessage, Channels, drainConsumer, drainOnStop, rpcHandle, rpcMethod, Services } from "cxlog"
import { Effect, Queue, Schedule, Schema } from "effect"

export const PRICES = "prices"

export const Price = Schema.Struct({
  symbol: Schema.String,
  price: Schema.Number.pipe(Schema.positive()),
  /** The worker's count of rounds: a symbol's ticks come in order, each once. */
  tick: Schema.Int.pipe(Schema.nonNegative())
})
export type Price = typeof Price.Type

export class UnknownSymbol extends Schema.TaggedError<UnknownSymbol>()("UnknownSymbol", { symbol: Schema.String }) {}

/** A worker's one method: the latest price it published for a symbol. */
export const Latest = rpcMethod("latest", {
  payload: Schema.Struct({ symbol: Schema.String }),
  success: Price,
  failure: UnknownSymbol
})

/** The service a worker serves under. */
export const quotesOf = (worker: string) => `quotes.${worker}`

/** A made-up price that moves with the tick, the same in every run. */
export const priceAt = (symbol: string, tick: number) =>
  100 + [...symbol].reduce((sum, c) => sum + c.charCodeAt(0), 0) % 50 + Math.sin(tick / 5) * 2

/**
 * A worker: serves `quotes.<name>` and publishes a price of each of its symbols every `everyMs`,
 * `ticks` rounds (forever when undefined). Scoped: its service and writer slot go with the scope.
 * Stopped (its scope closed by interruption), it stops publishing and, under a draining
 * supervisor, waits at the fence until the dashboard has every price it published.
 */
export const worker = (
  name: string,
  symbols: ReadonlyArray<string>,
  options: { readonly everyMs: number; readonly ticks?: number }
) =>
  Effect.gen(function*() {
    const latest = new Map<string, Price>()
    yield* (yield* Services).serve(quotesOf(name), [
      rpcHandle(Latest, ({ symbol }) => {
        const price = latest.get(symbol)
        return price === undefined ? Effect.fail(new UnknownSymbol({ symbol })) : Effect.succeed(price)
      })
    ])
    const prices = yield* (yield* Channels).open(PRICES, Price)
    const publisher = yield* prices.publisher
    yield* drainOnStop({ channels: [prices] })
    for (let tick = 0; options.ticks === undefined || tick < options.ticks; tick++) {
      for (const symbol of symbols) {
        const price = { symbol, price: priceAt(symbol, tick), tick }
        // Answered before it is published: whoever saw it on the channel may ask for it.
        latest.set(symbol, price)
        yield* publisher.publish(price)
      }
      yield* Effect.sleep(options.everyMs)
    }
  })

/** What a dashboard has seen: each symbol's latest price off the channel. */
export type Board = ReadonlyMap<string, Price>

/**
 * A dashboard: subscribes to `prices` now (it sees what is published from here on) and asks
 * the workers' services. Every price it takes is handled by one consumer, which keeps the board
 * and calls `onPrice`: at a stop it takes what is left (under a draining supervisor, after every
 * worker's last price is in) before the scope goes on closing. `read(count)` waits for `count`
 * more prices handled and returns the board, failing if a symbol's ticks came out of order (a
 * restarted worker's start over at 0); `handled()` counts them all; `quote(worker, symbol)` calls
 * the worker by name, waiting (bounded) for it to be served.
 */
export const dashboard = (onPrice: (price: Price) => Effect.Effect<void> = () => Effect.void) =>
  Effect.gen(function*() {
    const services = yield* Services
    const subscription = yield* (yield* (yield* Channels).open(PRICES, Price)).subscribe
    const board = new Map<string, Price>()
    const arrived = yield* Queue.unbounded<Price>()
    let outOfOrder: string | undefined
    let handled = 0
    const handle = ({ value }: ChannelMessage<Price>) =>
      Effect.suspend(() => {
        const before = board.get(value.symbol)
        // A worker restarted by its supervisor starts its ticks over at 0.
        if (before !== undefined && value.tick !== before.tick + 1 && value.tick !== 0) {
          outOfOrder ??= `${value.symbol}: tick ${value.tick} after ${before.tick}`
        }
        board.set(value.symbol, value)
        handled++
        return Effect.zipRight(onPrice(value), Queue.offer(arrived, value))
      })
    yield* drainOnStop({ channels: [], consumers: [drainConsumer(subscription, handle)] })
    const read = (count: number, timeoutMs = 10_000) =>
      Effect.gen(function*() {
        for (let i = 0; i < count; i++) {
          yield* Queue.take(arrived).pipe(
            Effect.timeoutFail({ duration: timeoutMs, onTimeout: () => new Error(`no price within ${timeoutMs} ms`) })
          )
        }
        if (outOfOrder !== undefined) return yield* Effect.dieMessage(outOfOrder)
        return new Map(board) as Board
      })
    const callers = new Map<string, Effect.Effect.Success<ReturnType<typeof services.connect>>>()
    const quote = (worker: string, symbol: string) =>
      Effect.gen(function*() {
        let caller = callers.get(worker)
        if (caller === undefined) {
          // A worker started after the dashboard is not served yet: look again, for 10 s at most.
          caller = yield* services.connect(quotesOf(worker)).pipe(
            Effect.retry({ schedule: Schedule.spaced("200 millis"), times: 50 })
          )
          callers.set(worker, caller)
        }
        // A worker that died takes its caller slot's service with it: the next quote connects to its replacement.
        return yield* caller.call(Latest, { symbol }).pipe(
          Effect.tapErrorTag("ServiceServerDied", () => Effect.sync(() => callers.delete(worker)))
        )
      })
    return { read, quote, handled: () => handled }
  })
