/**
 * A subscription connection is idle when its client holds the broker up — no credit left, or
 * bytes the kernel does not take — with nothing moving either way for the broker's idle
 * timeout: it is closed (`idle-timeout`) and its named consumer released. A subscriber waiting
 * for new messages is never idle, and a remote subscriber cut for not pulling carries on.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Option, Stream } from "effect"
import { join } from "node:path"
import { upsertUser, userRecord } from "../../src/layers/net/Auth.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { decodeControl, ErrorBody, PROTOCOL_VERSION } from "../../src/layers/net/Control.js"
import { FrameType } from "../../src/layers/net/Frame.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import { Subscribe, subscribeFrame } from "../../src/layers/net/SubscribeFrames.js"
import { makeRemote } from "../../src/layers/net/SubscriberRemote.js"
import type { Subscription } from "../../src/services/net/Subscriber.js"
import { publishTestMessages } from "../fixtures/net-audit.js"
import { errorCode, rawConnect } from "../fixtures/net-raw-client.js"
import { tempDir } from "../helpers/Processes.js"
import { until } from "../helpers/ServeProcess.js"

// Long enough that a loaded machine still makes its checks before the cut (the busy member, the waiting subscriber).
const IDLE_MS = 500

/**
 * A memory log with topic "t" and `messages` published; the subscribers' broker has a short idle
 * timeout (the publisher's has the default: an idle publisher is closed too).
 */
const setUp = (messages: number) =>
  Effect.gen(function*() {
    const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
    const broker = yield* BrokerLayers.make({ insecure: true, idleTimeoutMs: IDLE_MS }).pipe(
      Effect.provide(BrokerLogLayers.layerMemory(log, 0))
    )
    const address = { host: "127.0.0.1", port: broker.port }
    const ingest = yield* BrokerLayers.make({ insecure: true }).pipe(
      Effect.provide(BrokerLogLayers.layerMemory(log, 1))
    )
    const publisher = yield* PublisherLayers.make({
      brokers: [{ host: "127.0.0.1", port: ingest.port }],
      topic: "t",
      batchBytes: 4096,
      connectTimeoutMs: 2_000,
      ackTimeoutMs: 10_000
    })
    const publish = (count: number, from: number) =>
      Effect.zipRight(publishTestMessages(publisher, 1, count, 500, from), publisher.flush(10_000))
    yield* publish(messages, 0)
    return { broker, address, publish }
  })

/** Pulls batches until `until` offsets were read in all, collecting them. */
const readUntil = (subscription: Subscription, offsets: Array<number>, until: number) =>
  Effect.gen(function*() {
    const pull = yield* Stream.toPull(subscription.batches)
    while (offsets.length < until) {
      const batches = yield* pull.pipe(
        Effect.catchAll((e) => (Option.isSome(e) ? Effect.fail(e.value) : Effect.dieMessage("the stream ended")))
      )
      for (const batch of Chunk.toReadonlyArray(batches)) {
        for (let i = 0; i < batch.count; i++) offsets.push(batch.offset + i)
      }
    }
  })

describe("an idle subscription connection", () => {
  it.scopedLive(
    "one that grants no credit and takes nothing is closed after the idle timeout, and its named consumer is free again",
    () =>
      Effect.gen(function*() {
        const { address, broker } = yield* setUp(200)
        // Credit 1: the broker sends one DATA frame, then waits for credit that never comes (the client is alive but stuck).
        const stuck = yield* rawConnect(address.port, undefined, 1 << 20)
        stuck.write(
          subscribeFrame(
            new Subscribe({ protocol: PROTOCOL_VERSION, topic: "t", from: "earliest", credit: 1, consumer: "c" })
          )
        )
        expect((yield* stuck.nextFrame()).type).toBe(FrameType.SUBSCRIBED)
        expect((yield* stuck.nextFrame()).type).toBe(FrameType.DATA)
        const remote = makeRemote({ brokers: [address] })
        const busy = yield* Effect.scoped(remote.subscribe("t", { consumer: "c" })).pipe(Effect.flip)
        expect(busy._tag).toBe("ConsumerBusy")

        const cut = yield* stuck.nextFrame(20 * IDLE_MS)
        expect(cut.type).toBe(FrameType.ERROR)
        const body = decodeControl(ErrorBody, cut.payload, "internal")
        expect(Either.getOrThrow(body).code).toBe("idle-timeout")
        expect(broker.stats().rejected["idle-timeout"]).toBe(1)
        // The consumer was released with the connection: a new member takes it at its committed offset.
        const next = yield* remote.subscribe("t", { consumer: "c" })
        expect(next.start).toBe(0)
      }),
    30_000
  )

  it.scopedLive(
    "a subscriber waiting for new messages (credit held, nothing to send) is not idle; a remote one that stops pulling is cut and carries on",
    () =>
      Effect.gen(function*() {
        const { address, broker, publish } = yield* setUp(300)
        const waiting = yield* makeRemote({ brokers: [address], credit: 64 }).subscribe("t", { consumer: "waiting" })
        const slow = yield* makeRemote({ brokers: [address], credit: 2 }).subscribe("t", {
          consumer: "slow",
          autoCommit: "off"
        })
        const read: [Array<number>, Array<number>] = [[], []]
        yield* readUntil(waiting, read[0], 300)
        yield* readUntil(slow, read[1], 1)

        // The slow one has granted all its credit and pulls nothing: it is cut.
        yield* until(
          () => broker.stats().rejected["idle-timeout"] !== undefined,
          20 * IDLE_MS,
          () => "the slow subscriber to be cut"
        )
        // A window, not a wait: two more idle timeouts, in which the waiting subscriber (it holds
        // credit, and the log has nothing new for it) must not be cut as well.
        yield* Effect.sleep(2 * IDLE_MS)
        expect(broker.stats().rejected["idle-timeout"]).toBe(1)
        yield* publish(200, 300)
        yield* readUntil(waiting, read[0], 500)
        yield* readUntil(slow, read[1], 500)
        const all = Array.from({ length: 500 }, (_, i) => i)
        expect(read[0]).toEqual(all)
        expect(read[1]).toEqual(all)
      }),
    30_000
  )

  it.scopedLive(
    "a SUBSCRIBE whose CHALLENGE is never answered is closed at the handshake timeout, not left waiting",
    () =>
      Effect.gen(function*() {
        const users = join(yield* tempDir("cxlog-subscribe-idle-"), "users")
        upsertUser(users, userRecord("alice", "alice-secret-1", { publish: [], read: ["*"] }, undefined, 64))
        const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
        // No idle timeout: only the handshake's bound can end this connection.
        const broker = yield* BrokerLayers.make({ credentials: users, handshakeTimeoutMs: IDLE_MS, idleTimeoutMs: 0 })
          .pipe(Effect.provide(log.forBroker(0)))
        const silent = yield* rawConnect(broker.port)
        silent.write(
          subscribeFrame(
            new Subscribe({
              protocol: PROTOCOL_VERSION,
              topic: "t",
              from: "earliest",
              credit: 1,
              consumer: "c",
              user: "alice",
              nonce: "AAAAAAAAAAAAAAAAAAAAAA"
            })
          )
        )
        expect((yield* silent.nextFrame()).type).toBe(FrameType.CHALLENGE)
        expect(errorCode(yield* silent.nextFrame(20 * IDLE_MS))).toBe("handshake-timeout")
      }),
    30_000
  )
})
