/** The publisher's Promise facade: close() flushes what was published, or says it could not. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { type AddressInfo, createServer } from "node:net"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { type CloseOptions, CxlogPublisher } from "../../src/layers/net/CxlogPublisher.js"
import { CxlogSubscriber } from "../../src/layers/net/CxlogSubscriber.js"
import type { PublishAck } from "../../src/services/net/Publisher.js"
import { anonymous } from "../fixtures/anonymous-region.js"

const brokerPort = Effect.gen(function*() {
  const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "events" }] })
  return (yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(BrokerLogLayers.layerMemory(log, 0)))).port
})

/** A port nothing listens on (a server's, closed again). */
const deadPort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })

/**
 * Type-checked by the lint (tsc over the tests), never run: `acked` known only at run time takes the
 * overload that resolves with the ACK or with nothing.
 */
export const ackedAtRunTime = (publisher: CxlogPublisher, acked: boolean): Promise<void | PublishAck> =>
  publisher.publish("x", { acked })

describe("CxlogPublisher", () => {
  it.scopedLive("close() without flush first delivers everything published: 5000 messages read back", () =>
    Effect.gen(function*() {
      const brokers = [{ host: "127.0.0.1", port: yield* brokerPort }]
      yield* Effect.promise(async () => {
        const publisher = await CxlogPublisher.open({ ...anonymous, brokers, topic: "events" })
        for (let i = 0; i < 5000; i++) await publisher.publish(`message ${i}`)
        await publisher.close()
        expect(publisher.stats().ackedMessages).toBe(5000)
        await expect(publisher.publish("after")).rejects.toMatchObject({ _tag: "PublisherClosed" })

        const subscriber = await CxlogSubscriber.open({ ...anonymous, brokers, topic: "events" })
        let read = 0
        for await (const m of subscriber) {
          expect(m.text()).toBe(`message ${read}`)
          if (++read === 5000) break
        }
        expect(read).toBe(5000)
      })
    }))

  it.live("close() that cannot flush closes anyway and rejects with PublisherCloseUnflushed naming the messages lost; { flush: false } closes at once", () =>
    Effect.promise(async () => {
      const brokers = [{ host: "127.0.0.1", port: await deadPort() }]
      const publisher = await CxlogPublisher.open({ ...anonymous, brokers, topic: "events", ackTimeoutMs: 300 })
      for (let i = 0; i < 10; i++) await publisher.publish(`m${i}`)
      // What is not acknowledged yet, by topic and message numbers.
      expect(publisher.unacknowledged()).toEqual([{ topic: "events", from: 0, count: 10 }])
      const closing = publisher.close()
      // Closing: no new message is taken, and a second close() is the same.
      await expect(publisher.publish("late")).rejects.toMatchObject({ _tag: "PublisherClosed" })
      expect(publisher.close()).toBe(closing)
      const error = await closing.then(() => undefined, (e: unknown) => e)
      // Nothing listens at the address: the flush fails on the refusals (BrokersUnreachable), sooner than its ACK timeout.
      expect(error).toMatchObject({
        _tag: "PublisherCloseUnflushed",
        unacknowledgedMessages: 10,
        cause: { _tag: "BrokersUnreachable" }
      })
      expect((error as Error).message).toMatch(/^closed with 10 message\(s\) published but not acknowledged: /)

      const abandoning = await CxlogPublisher.open({ ...anonymous, brokers, topic: "events", ackTimeoutMs: 600_000 })
      await abandoning.publish("dropped")
      await abandoning.close({ flush: false })

      // One that failed (no broker within its connect timeout) with nothing published loses nothing: close() resolves.
      const failed = await CxlogPublisher.open({ ...anonymous, brokers, topic: "events", connectTimeoutMs: 100 })
      // Failed once a flush says why (a flush of nothing succeeds until then): looked at every 20 ms, at most 10 s.
      const failure = () => failed.flush(0).then(() => undefined, (e: unknown) => e)
      let why = await failure()
      for (const deadline = Date.now() + 10_000; why === undefined && Date.now() < deadline; why = await failure()) {
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      expect(why).toMatchObject({ _tag: "BrokersUnreachable" })
      await expect(failed.close()).resolves.toBeUndefined()
    }))

  it.scopedLive("close() with publishes waiting for window room: each resolves with its message acknowledged, or rejects PublisherClosed with nothing taken", () =>
    Effect.gen(function*() {
      const brokers = [{ host: "127.0.0.1", port: yield* brokerPort }]
      yield* Effect.promise(async () => {
        // A window of one 4 KiB batch: of 3000-byte messages one is in flight and one gathers, the rest wait for room.
        for (let round = 0; round < 5; round++) {
          const publisher = await CxlogPublisher.open({
            ...anonymous,
            brokers,
            topic: "events",
            maxInFlightBatches: 1,
            adaptiveWindow: false,
            batchBytes: 4096
          })
          const outcomes = Array.from(
            { length: 20 },
            (_, i) =>
              publisher.publish(`${i}`.padEnd(3000, "x")).then(() => "published", (e: { _tag?: string }) => e._tag)
          )
          await publisher.close()
          const settled = await Promise.all(outcomes)
          const published = settled.filter((outcome) => outcome === "published").length
          expect(settled.filter((outcome) => outcome !== "published"), `round ${round}`).toEqual(
            Array(20 - published).fill("PublisherClosed")
          )
          // Every message a resolved publish took went out with the flush: none was taken after it, to go unsent.
          expect(publisher.stats(), `round ${round}`).toMatchObject({ messages: published, ackedMessages: published })
        }
      })
    }))

  it.scopedLive("close() with options it cannot take rejects with InvalidPublisherOptions naming them, nothing closed; a close() it can take closes", () =>
    Effect.gen(function*() {
      const brokers = [{ host: "127.0.0.1", port: yield* brokerPort }]
      yield* Effect.promise(async () => {
        const publisher = await CxlogPublisher.open({ ...anonymous, brokers, topic: "events" })
        const cases: ReadonlyArray<readonly [unknown, string]> = [
          [
            { timeout: "5 sekonds" },
            `close's timeout must be a duration ("5 seconds", Duration.seconds(5)) or a number of milliseconds, not "5 sekonds"`
          ],
          [{ timeoutMs: "5000" }, "close takes a timeout in milliseconds from 0 to 2147483647, not 5000"],
          [{ timeoutMs: Number.NaN }, "close takes a timeout in milliseconds from 0 to 2147483647, not NaN"],
          [{ flush: "no" }, "close's flush is true or false, not no"],
          [null, "close takes { flush, timeoutMs, timeout } or nothing, not null"]
        ]
        for (const [given, says] of cases) {
          const error = await publisher.close(given as CloseOptions).then(() => undefined, (e: unknown) => e)
          expect(error, JSON.stringify(given)).toMatchObject({ _tag: "InvalidPublisherOptions" })
          expect((error as Error).message, JSON.stringify(given)).toContain(says)
        }
        // Still open: it publishes, and the close it can take flushes and closes it.
        await publisher.publish("after the refusals", { acked: true })
        await publisher.close({ timeout: "5 seconds" })
        expect(publisher.stats()).toMatchObject({ messages: 1, ackedMessages: 1 })
      })
    }))
})
