/**
 * A remote subscription whose broker goes away carries on at another broker (any broker serves
 * any topic): from where it was, every message once and in order — anonymous or as a named
 * consumer (whose new broker starts at its committed offset; the client skips what it delivered,
 * and its commits follow the new broker's re-sending).
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Context, Effect, Exit, Option, Scope, Stream } from "effect"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import { makeRemote } from "../../src/layers/net/SubscriberRemote.js"
import { Consumers } from "../../src/services/log/Consumers.js"
import type { Subscription } from "../../src/services/net/Subscriber.js"
import { publishTestMessages } from "../fixtures/net-audit.js"

const MESSAGES = 3000

/** Pulls batches, collecting their offsets, until `until` offsets were read in all. */
const readUntil = (
  pull: Effect.Effect<Chunk.Chunk<{ offset: number; count: number }>, Option.Option<unknown>>,
  offsets: Array<number>,
  until: number
) =>
  Effect.gen(function*() {
    while (offsets.length < until) {
      for (const batch of yield* pull) for (let i = 0; i < batch.count; i++) offsets.push(batch.offset + i)
    }
  })

const pullOf = (subscription: Subscription) => Stream.toPull(subscription.batches)

/**
 * Two brokers over one memory log holding MESSAGES messages of topic t (published through the
 * second); the first lives in `firstScope`, which a test closes to make it go.
 */
const twoBrokers = Effect.gen(function*() {
  const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
  const firstScope = yield* Scope.make()
  yield* Effect.addFinalizer(() => Scope.close(firstScope, Exit.void))
  const first = yield* BrokerLayers.make({ insecure: true }).pipe(
    Effect.provide(BrokerLogLayers.layerMemory(log, 0)),
    Scope.extend(firstScope)
  )
  const second = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(BrokerLogLayers.layerMemory(log, 1)))
  const brokers = [first, second].map((b) => ({ host: "127.0.0.1", port: b.port }))
  const publisher = yield* PublisherLayers.make({
    brokers: [brokers[1]!],
    topic: "t",
    batchBytes: 4096,
    connectTimeoutMs: 2_000,
    ackTimeoutMs: 10_000
  })
  yield* publishTestMessages(publisher, 1, MESSAGES, 500)
  yield* publisher.flush(10_000)
  return { log, firstScope, brokers }
})

describe("a remote subscription whose broker goes", () => {
  it.scopedLive(
    "carries on at the next broker: every message once and in order, anonymous and as a named consumer; with no broker left it fails naming why",
    () =>
      Effect.gen(function*() {
        const { firstScope, brokers } = yield* twoBrokers

        // Small credit: the first broker still has most of the log to send when it goes.
        const anonymous = yield* makeRemote({ brokers, credit: 2 }).subscribe("t")
        const named = yield* makeRemote({ brokers, credit: 2 }).subscribe("t", { consumer: "c", autoCommit: "off" })
        const pulls = [yield* pullOf(anonymous), yield* pullOf(named)] as const
        const read: [Array<number>, Array<number>] = [[], []]
        yield* readUntil(pulls[0], read[0], 500)
        yield* readUntil(pulls[1], read[1], 500)
        yield* named.commit(300)
        yield* Scope.close(firstScope, Exit.void)

        yield* readUntil(pulls[0], read[0], MESSAGES)
        yield* readUntil(pulls[1], read[1], MESSAGES)
        const all = Array.from({ length: MESSAGES }, (_, i) => i)
        expect(read[0]).toEqual(all)
        expect(read[1]).toEqual(all)
        // The named consumer's commit went on at the second broker.
        yield* named.commit()
        expect(yield* named.lag).toBe(0)

        // With only the gone broker to ask, the subscription fails and says so.
        const alone = yield* makeRemote({ brokers: [brokers[0]!], connectTimeoutMs: 300 }).subscribe("t").pipe(
          Effect.flip
        )
        expect(alone._tag).toBe("SubscriberBrokersUnreachable")
        // An address no socket can be opened to is refused with the options, naming it, at once (Node's connect would throw).
        const undialable = yield* makeRemote({ brokers: [{ host: "127.0.0.1", port: 70_000 }] }).subscribe("t").pipe(
          Effect.flip
        )
        expect(undialable).toMatchObject({ _tag: "InvalidSubscribeOptions" })
        expect(undialable.message).toContain(`not a broker address: "127.0.0.1:70000"`)
      }),
    60_000
  )

  it.scopedLive(
    "a named consumer's auto-commit carries on at the next broker: commits only what that broker re-sent, and the commit of what was delivered before once it re-sent that far",
    () =>
      Effect.gen(function*() {
        const { log, firstScope, brokers } = yield* twoBrokers
        const committedOf = Effect.map(Context.get(log.forBroker(1), Consumers).list("t").pipe(Effect.orDie), (cs) =>
          cs.find((c) => c.name === "c")?.committed)

        // A commit falls due at the pull after 2000 messages were handed out: read that far, and let the
        // first broker go before that pull. Its COMMIT is lost with the broker, so the second one starts
        // the consumer at 0 and must not be asked to commit what it has not re-sent yet.
        const named = yield* makeRemote({ brokers, credit: 2 }).subscribe("t", {
          consumer: "c",
          autoCommit: { everyMessages: 2000, intervalMs: 600_000 }
        })
        const pull = yield* pullOf(named)
        const read: Array<number> = []
        yield* readUntil(pull, read, 2000)
        const delivered = named.position()
        expect(yield* committedOf).toBe(0)
        yield* Scope.close(firstScope, Exit.void)

        yield* readUntil(pull, read, MESSAGES)
        expect(read).toEqual(Array.from({ length: MESSAGES }, (_, i) =>
          i))
        // The commit made at that pull reached the second broker once it had re-sent that far.
        for (let i = 0; i < 100 && ((yield* committedOf) ?? 0) < delivered; i++) yield* Effect.sleep(20)
        expect(yield* committedOf).toBeGreaterThanOrEqual(delivered)
        yield* named.commit()
        expect(yield* named.lag).toBe(0)
      }),
    60_000
  )

  it.scopedLive(
    "a subscription whose only broker goes fails with SubscriberConnectionFailed naming the broken connection and the failed takeover",
    () =>
      Effect.gen(function*() {
        const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
        const brokerScope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(brokerScope, Exit.void))
        const broker = yield* BrokerLayers.make({ insecure: true }).pipe(
          Effect.provide(BrokerLogLayers.layerMemory(log, 0)),
          Scope.extend(brokerScope)
        )
        const address = { host: "127.0.0.1", port: broker.port }
        const publisher = yield* PublisherLayers.make({
          brokers: [address],
          topic: "t",
          batchBytes: 4096,
          connectTimeoutMs: 2_000,
          ackTimeoutMs: 10_000
        })
        yield* publishTestMessages(publisher, 1, 100, 200)
        yield* publisher.flush(10_000)
        const subscription = yield* makeRemote({ brokers: [address], connectTimeoutMs: 500 }).subscribe("t")
        const pull = yield* pullOf(subscription)
        const read: Array<number> = []
        yield* readUntil(pull, read, 100)
        yield* Scope.close(brokerScope, Exit.void)
        const failed = (yield* Effect.flip(readUntil(pull, read, 101))) as Option.Option<
          { _tag: string; code: string; message: string }
        >
        expect(Option.isSome(failed)).toBe(true)
        const error = Option.getOrThrow(failed)
        expect(error).toMatchObject({ _tag: "SubscriberConnectionFailed", code: "closed" })
        expect(error.message).toMatch(
          /no other broker took the subscription over: no broker took the subscription: .*ECONNREFUSED/
        )
      }),
    60_000
  )
})
