/**
 * An ACK tracker whose connection has nothing in flight does not wait on the log's progress:
 * rounds ordering other sessions' batches do not wake it (counted through its AckTracker).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { FrameType } from "../../src/layers/net/Frame.js"
import { countingAcks } from "../fixtures/counting-acks.js"
import { batchFrame, hello, openedEpoch, rawConnect } from "../fixtures/net-raw-client.js"

const message = (n: number) => new Uint8Array(24).fill(n & 0xff)

describe("Broker ACK tracker with nothing in flight", () => {
  it.scopedLive("is not woken by rounds for other connections, and still acknowledges its next batch", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      // Broker 0's tracker: every progress wait and frontier read it makes (through its session watch) is counted.
      const { context: counting, counts } = countingAcks(log, 0)
      const idle = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(counting))
      const busy = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(BrokerLogLayers.layerMemory(log, 1))
      )
      const quiet = yield* rawConnect(idle.port)
      quiet.write(hello("t", 7))
      const quietEpoch = yield* openedEpoch(quiet)
      quiet.write(batchFrame(7, quietEpoch, 0, [message(0)]))
      expect((yield* quiet.nextFrame()).seq).toBe(1)
      yield* log.settle
      const before = { ...counts }
      // Another session on another broker: 20 batches, each ordered (the topic's progress moves each time) and acknowledged.
      const loud = yield* rawConnect(busy.port)
      loud.write(hello("t", 8))
      const loudEpoch = yield* openedEpoch(loud)
      for (let seq = 0; seq < 20; seq++) {
        loud.write(batchFrame(8, loudEpoch, seq, [message(seq)]))
        const ack = yield* loud.nextFrame()
        expect([ack.type, ack.seq]).toEqual([FrameType.ACK, seq + 1])
      }
      yield* log.settle
      expect(counts).toEqual(before)
      // A batch in flight again: the tracker waits on progress and acknowledges it.
      quiet.write(batchFrame(7, quietEpoch, 1, [message(1)]))
      const ack = yield* quiet.nextFrame()
      expect([ack.type, ack.seq]).toEqual([FrameType.ACK, 2])
      expect(counts.reads).toBeGreaterThan(before.reads)
      // Every wait was a standing one, served from the doorbell's callbacks: no fiber waits per batch.
      expect(counts.progressWaits).toBeGreaterThan(0)
      expect(counts.fiberWaits).toBe(0)
    }))
})
