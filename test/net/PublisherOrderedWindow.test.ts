/**
 * ACK 2's two windows: batches the log has ordered leave the publisher's send window (the
 * broker acknowledges the ordered frontier at level 1 to a publisher that asked for it), so
 * while nothing reaches the disk the publisher keeps sending until the ordered window is full;
 * nothing completes before level 2, and once the disk covers them every message is in the log
 * once, in order. A raw client that does not ask gets level-2 ACK frames only.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { FrameType } from "../../src/layers/net/Frame.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import type { PublisherShape } from "../../src/services/net/Publisher.js"
import { audit, clean, testMessage } from "../fixtures/net-audit.js"
import { batchFrame, hello, openedEpoch, rawConnect } from "../fixtures/net-raw-client.js"

const message = (n: number) => new Uint8Array(24).fill(n & 0xff)

const durableBroker = Effect.gen(function*() {
  const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "d", ackLevel: 2, replicationFactor: 2 }] })
  const server = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(BrokerLogLayers.layerMemory(log, 0)))
  const topic = log.store.topics.find((t) => t.info.name === "d")!
  /** The durable tier's part: batches 0..count-1 of the session are on disk. */
  const durable = (clientId: number, sessionEpoch: number, count: number) =>
    Effect.sync(() => {
      topic.sessions.setDurable(clientId, sessionEpoch, count)
      topic.progress++
      log.store.signal.notify()
    })
  return { log, server, durable }
})

/** An ACK 2 publisher on `port` whose ~600-byte messages take a batch each. */
const onePerBatch = (port: number, clientId: number, window: number) =>
  PublisherLayers.make({
    brokers: [{ host: "127.0.0.1", port }],
    topic: "d",
    clientId,
    ackLevel: 2,
    batchBytes: 1024,
    lingerMs: 1,
    maxInFlightBatches: window
  })

/** Offers messages until `limit` went or the publisher refused `patience` times in a row (both windows full); how many it took. */
const offerUntilFull = (p: PublisherShape, clientId: number, limit: number, patience: number) =>
  Effect.gen(function*() {
    let taken = 0
    for (let i = 0, refused = 0; i < 10_000 && refused < patience && taken < limit; i++) {
      if (p.tryPublish(testMessage(clientId, taken, 600)) === true) {
        taken++
        refused = 0
      } else {
        refused++
        yield* Effect.sleep(5)
      }
    }
    return taken
  })

describe("publisher at ACK 2", () => {
  it.scopedLive("ordered batches wait for the disk outside the send window; all complete once durable, once and in order", () =>
    Effect.gen(function*() {
      const { log, server, durable } = yield* durableBroker
      const window = 2
      const p = yield* onePerBatch(server.port, 5, window)
      // Nothing reaches the disk meanwhile: offered until the publisher refuses for a while, or all 40 went.
      let taken = yield* offerUntilFull(p, 5, 40, 20)
      // More than the send window's worth was ordered with nothing on disk: ordered batches left it,
      // up to the ordered window (3 × window) plus the send window; none is done before level 2.
      expect(log.ordered("d").length).toBeGreaterThan(2 * window)
      expect(log.ordered("d").length).toBeLessThanOrEqual(4 * window)
      expect(p.stats().ackedBatches).toBe(0)
      const epoch = p.stats().sessionEpoch
      // The durable tier catches up, and keeps up with the rest.
      yield* Effect.forkScoped(
        Effect.forever(
          Effect.zipRight(Effect.suspend(() => durable(5, epoch, log.ordered("d").length)), Effect.sleep(5))
        )
      )
      for (; taken < 40; taken++) yield* p.publish(testMessage(5, taken, 600))
      yield* p.flush(10_000)
      expect(audit(log.ordered("d"), new Map([[5, 40]]))).toEqual({ messages: 40, ...clean })
      expect(p.stats().ackedMessages).toBe(40)
    }))

  it.scopedLive("the ordered window is 3 × the send window but at most 192 batches: a deep send window does not keep more waiting for the disk", () =>
    Effect.gen(function*() {
      const { log, server } = yield* durableBroker
      const window = 200
      const p = yield* onePerBatch(server.port, 6, window)
      // Nothing on disk: offered until the publisher refuses for half a second (both windows full).
      yield* offerUntilFull(p, 6, 1_000, 100)
      // At most the send window + min(3 × 200, 192) sent; the factor alone lets 800 through.
      expect(log.ordered("d").length).toBeGreaterThan(window)
      expect(log.ordered("d").length).toBeLessThanOrEqual(window + 192)
      expect(p.stats().ackedBatches).toBe(0)
    }))

  it.scopedLive("a client that does not ask for ordered ACKs gets level-2 ACKs only", () =>
    Effect.gen(function*() {
      const { server, durable } = yield* durableBroker
      const client = yield* rawConnect(server.port)
      client.write(hello("d", 9, undefined, 2))
      const epoch = yield* openedEpoch(client)
      client.write(Buffer.concat([batchFrame(9, epoch, 0, [message(0)]), batchFrame(9, epoch, 1, [message(1)])]))
      // Ordered at once; nothing is sent until the disk covers them, then one ACK at level 2.
      const early = yield* Effect.either(Effect.timeout(client.nextFrame(), "300 millis"))
      expect(early._tag).toBe("Left")
      yield* durable(9, epoch, 2)
      const ack = yield* client.nextFrame()
      expect([ack.type, ack.seq, ack.messageCount]).toEqual([FrameType.ACK, 2, 2])
    }))
})
