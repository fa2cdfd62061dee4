/** The Promise facade: publish and read back without Effect, a consumer's commit and lag, AbortSignal. */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { getEventListeners } from "node:events"
import { type AddressInfo, createServer, type Socket } from "node:net"
import {
  defaultCredentialPath,
  defaultSecretPath,
  ensureRegionCredentials,
  removeRegionCredentials
} from "../../src/layers/net/Auth.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { CxlogPublisher } from "../../src/layers/net/CxlogPublisher.js"
import {
  type CxlogSubscribeOptions,
  CxlogSubscriber,
  type CxlogSubscriberOptions
} from "../../src/layers/net/CxlogSubscriber.js"
import { layerRemote } from "../../src/layers/net/SubscriberRemote.js"
import type { SubscriberMessage } from "../../src/services/net/Subscriber.js"
import { anonymous } from "../fixtures/anonymous-region.js"
import { spawnFixture } from "../helpers/Processes.js"

const brokerPort = Effect.gen(function*() {
  const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "events" }] })
  return (yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(BrokerLogLayers.layerMemory(log, 0)))).port
})

describe("CxlogSubscriber", () => {
  it.scopedLive("without credentials both facades authenticate as the local user of their region, from the secret file its head wrote", () =>
    Effect.gen(function*() {
      const region = `cxlog-test-facade-${process.pid}-${Math.random().toString(16).slice(2, 10)}`
      const files = [defaultCredentialPath(region), defaultSecretPath(region)] as const
      yield* Effect.acquireRelease(
        Effect.sync(() => ensureRegionCredentials(...files)),
        () => Effect.sync(() => removeRegionCredentials(...files))
      )
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "events" }] })
      const broker = yield* BrokerLayers.make({ credentials: files[0] }).pipe(
        Effect.provide(BrokerLogLayers.layerMemory(log, 0))
      )
      const brokers = [{ host: "127.0.0.1", port: broker.port }]
      yield* Effect.promise(async () => {
        const publisher = await CxlogPublisher.open({ brokers, topic: "events", region })
        await publisher.publish("hello")
        await publisher.flush(5_000)
        await publisher.close()
        const subscriber = await CxlogSubscriber.open({ brokers, topic: "events", region })
        expect((await subscriber.nextBatch()).offset).toBe(0)
        await subscriber.close()
        // A region whose head left no secret file here: no credentials, so the broker refuses.
        await expect(CxlogSubscriber.open({ brokers, topic: "events", region: `${region}-none` })).rejects
          .toMatchObject({ code: "auth-required" })
      })
    }))

  it.scopedLive("for await reads back what CxlogPublisher published; a consumer commits, reports its lag and resumes where it committed", () =>
    Effect.gen(function*() {
      const brokers = [{ host: "127.0.0.1", port: yield* brokerPort }]
      yield* Effect.promise(async () => {
        const publisher = await CxlogPublisher.open({ ...anonymous, brokers, topic: "events" })
        const before = Date.now()
        // Even messages carry a key (odd ones a header): strings go as UTF-8.
        for (let i = 0; i < 10; i++) {
          await publisher.publish(`message ${i}`, i % 2 === 0 ? { key: `k${i}` } : { headers: [["n", `${i}`]] })
        }
        await publisher.flush(5_000)
        await publisher.close()
        const after = Date.now()

        const subscriber = await CxlogSubscriber.open({
          ...anonymous,
          brokers,
          topic: "events",
          consumer: "reader",
          autoCommit: "off"
        })
        const seen: Array<string> = []
        const copies: Array<SubscriberMessage> = []
        const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? "-" : new TextDecoder().decode(bytes))
        for await (const message of subscriber) {
          seen.push(
            `${message.offset}:${message.text()}:${text(message.key)}:${
              message.headers?.map((h) => `${h.name}=${text(h.value)}`).join(",") ?? "-"
            }`
          )
          // A header's value as text, by its name; none of that name is undefined.
          expect(message.header("n")).toBe(message.offset % 2 === 1 ? `${message.offset}` : undefined)
          expect(message.header("other")).toBeUndefined()
          expect(message.timestamp).toBeGreaterThanOrEqual(before)
          expect(message.timestamp).toBeLessThanOrEqual(after)
          copies.push(message.copy())
          if (message.offset === 5) {
            // Inside the loop: leaving it closes the subscriber.
            await subscriber.commit(4)
            expect(await subscriber.lag()).toBe(10 - subscriber.position)
            await expect(subscriber.commit(100)).rejects.toMatchObject({ _tag: "CommitRejected" })
            // An offset that is no number (a JavaScript caller's) is refused, not read as "up to the last message".
            for (const given of ["5", { topic: "events", offset: "5" }, null] as ReadonlyArray<unknown>) {
              await expect(subscriber.commit(given as number), JSON.stringify(given)).rejects.toMatchObject({
                _tag: "CommitRejected",
                reason: expect.stringContaining("an offset is a number (or { topic, offset }), not ")
              })
            }
            break
          }
        }
        const expected = Array.from(
          { length: 6 },
          (_, i) => `${i}:message ${i}:${i % 2 === 0 ? `k${i}:-` : `-:n=${i}`}`
        )
        expect(seen).toEqual(expected)
        expect(
          copies.map((m) =>
            `${m.offset}:${text(m.payload)}:${text(m.key)}:${
              m.headers?.map((h) => `${h.name}=${text(h.value)}`).join(",") ?? "-"
            }`
          )
        ).toEqual(expected)

        const again = await CxlogSubscriber.open({
          ...anonymous,
          brokers,
          topic: "events",
          consumer: "reader",
          autoCommit: "off"
        })
        for await (const message of again) {
          if (message.offset === 7) {
            // By default, up to the last message iterated, even inside a batch.
            await again.commit()
            break
          }
        }
        const third = await CxlogSubscriber.open({ ...anonymous, brokers, topic: "events", consumer: "reader" })
        const batch = await third.nextBatch()
        expect(batch.offset).toBe(8)
        await third.close()
      })
    }))

  it.scopedLive("eachBatch runs until its AbortSignal (no handler: InvalidSubscribeOptions, nothing taken); aborting the open signal ends iteration; a bad topic, or a name no topic can have, rejects with TopicNotFound (topics that are none: InvalidTopicPattern)", () =>
    Effect.gen(function*() {
      const brokers = [{ host: "127.0.0.1", port: yield* brokerPort }]
      yield* Effect.promise(async () => {
        const publisher = await CxlogPublisher.open({ ...anonymous, brokers, topic: "events" })
        for (let i = 0; i < 3; i++) await publisher.publish(`m${i}`)
        await publisher.flush(5_000)
        await publisher.close()

        const stopBatches = new AbortController()
        const subscriber = await CxlogSubscriber.open({ ...anonymous, brokers, topic: "events" })
        // No handler: refused before a batch is taken, so the next eachBatch starts at the first message.
        await expect(subscriber.eachBatch(undefined as unknown as () => void)).rejects.toMatchObject({
          _tag: "InvalidSubscribeOptions",
          reason: "eachBatch takes a handler function, not undefined"
        })
        const offsets: Array<number> = []
        await subscriber.eachBatch((batch) => {
          batch.forEach((m) => offsets.push(m.offset))
          if (offsets.length === 3) stopBatches.abort()
        }, { signal: stopBatches.signal })
        expect(offsets).toEqual([0, 1, 2])
        await subscriber.close()

        const stop = new AbortController()
        const tail = await CxlogSubscriber.open({
          ...anonymous,
          brokers,
          topic: "events",
          from: "latest",
          signal: stop.signal
        })
        // A window, not a wait: nothing is published, so nothing may be read before the abort ends it.
        setTimeout(() => stop.abort(), 50)
        const read: Array<number> = []
        for await (const m of tail) read.push(m.offset)
        expect(read).toEqual([])

        await expect(CxlogSubscriber.open({ ...anonymous, brokers, topic: "nope" })).rejects.toMatchObject({
          _tag: "TopicNotFound"
        })
        // A name no topic can have, from a JavaScript caller: as the subscriber in place says it.
        for (const topic of [5, "", "x".repeat(300)] as unknown as ReadonlyArray<string>) {
          await expect(CxlogSubscriber.open({ ...anonymous, brokers, topic })).rejects.toMatchObject({
            _tag: "TopicNotFound",
            name: String(topic)
          })
        }
        // So is a list of them that holds something other than names and patterns, not a TypeError.
        const topics = ["events", null] as unknown as ReadonlyArray<string>
        await expect(CxlogSubscriber.open({ ...anonymous, brokers, topics })).rejects.toMatchObject({
          _tag: "InvalidTopicPattern",
          message: `invalid topic or pattern "null": a topic or pattern is a string, not null`
        })
      })
    }))

  it.scopedLive("fromTime takes a Date as its time in ms; a time that is none, a from that is no position, or an autoCommit that is no policy rejects open in one line", () =>
    Effect.gen(function*() {
      const brokers = [{ host: "127.0.0.1", port: yield* brokerPort }]
      yield* Effect.promise(async () => {
        const publisher = await CxlogPublisher.open({ ...anonymous, brokers, topic: "events" })
        for (let i = 0; i < 3; i++) await publisher.publish(`early ${i}`)
        await publisher.flush(5_000)
        // Past the early ones' stamps (ms): the late ones are stamped after the mark.
        const mark = Date.now() + 2
        while (Date.now() <= mark) await new Promise((resolve) => setTimeout(resolve, 1))
        for (let i = 0; i < 2; i++) await publisher.publish(`late ${i}`)
        await publisher.flush(5_000)
        await publisher.close()
        for (const fromTime of [new Date(mark), mark]) {
          const since = await CxlogSubscriber.open({ ...anonymous, brokers, topic: "events", fromTime })
          expect((await since.nextBatch()).offset).toBe(3)
          await since.close()
        }
        await expect(CxlogSubscriber.open({ ...anonymous, brokers, topic: "events", fromTime: new Date("nonsense") }))
          .rejects.toMatchObject({
            _tag: "InvalidSubscribeOptions",
            message:
              "invalid subscribe options: fromTime NaN is not a time: give milliseconds since the epoch (Date.now(), date.getTime())"
          })
        await expect(CxlogSubscriber.open({ ...anonymous, brokers, topic: "events", from: -1 })).rejects
          .toMatchObject({ _tag: "InvalidSubscribeOptions" })
        // An autoCommit that is no policy is refused, not read as the default: false would commit every 100 ms.
        for (
          const [autoCommit, says] of [
            [false, `autoCommit is "off" or { everyMessages, intervalMs }: autoCommit takes an options object`],
            ["none", `autoCommit is "off" or { everyMessages, intervalMs }: autoCommit takes an options object`],
            [{ interval: 5 }, "autoCommit has no option interval (its options: everyMessages, intervalMs)"],
            [{ everyMessages: 0 }, "autoCommit's everyMessages must be a whole number of messages, at least 1, not 0"],
            [{ intervalMs: "1s" }, `autoCommit's intervalMs must be a number of milliseconds, 0 or more, not "1s"`]
          ] as const
        ) {
          const options = {
            ...anonymous,
            brokers,
            topic: "events",
            consumer: "c",
            autoCommit
          } as CxlogSubscriberOptions
          await expect(CxlogSubscriber.open(options), JSON.stringify(autoCommit)).rejects.toMatchObject({
            _tag: "InvalidSubscribeOptions",
            message: expect.stringContaining(says)
          })
        }
        // A misspelt option is refused naming it, not read past: this one would start at the topic's start.
        const misspelt = { ...anonymous, brokers, topic: "events", fromtime: mark } as CxlogSubscriberOptions
        await expect(CxlogSubscriber.open(misspelt)).rejects.toMatchObject({
          _tag: "InvalidSubscribeOptions",
          message: expect.stringMatching(
            /^invalid subscribe options: a subscriber has no option fromtime \(its options: topic, /
          )
        })
        // openWith's layer is the connection: connection options given to it would be left out, so they are refused.
        const given = { topic: "events", brokers } as CxlogSubscribeOptions
        await expect(CxlogSubscriber.openWith(layerRemote({ ...anonymous, brokers }), given)).rejects.toMatchObject({
          _tag: "InvalidSubscribeOptions",
          message: expect.stringContaining("a subscriber has no option brokers")
        })
      })
    }))

  it.scopedLive("leaving a for await loop (break, a throw) closes the subscriber: the same named consumer opens again at once", () =>
    Effect.gen(function*() {
      const brokers = [{ host: "127.0.0.1", port: yield* brokerPort }]
      yield* Effect.promise(async () => {
        const publisher = await CxlogPublisher.open({ ...anonymous, brokers, topic: "events" })
        for (let i = 0; i < 5; i++) await publisher.publish(`m${i}`)
        await publisher.flush(5_000)
        await publisher.close()

        const first = await CxlogSubscriber.open({
          ...anonymous,
          brokers,
          topic: "events",
          consumer: "looper",
          autoCommit: "off"
        })
        for await (const m of first) if (m.offset === 1) break
        const second = await CxlogSubscriber.open({
          ...anonymous,
          brokers,
          topic: "events",
          consumer: "looper",
          autoCommit: "off"
        })
        await expect(first.nextBatch()).rejects.toMatchObject({ name: "AbortError" })
        const thrown = new Error("handler failed")
        await expect((async () => {
          for await (const m of second) if (m.offset === 3) throw thrown
        })()).rejects.toBe(thrown)
        // Nothing was committed, so the third member starts where the first did.
        const third = await CxlogSubscriber.open({
          ...anonymous,
          brokers,
          topic: "events",
          consumer: "looper",
          autoCommit: "off"
        })
        expect((await third.nextBatch()).offset).toBe(0)
        await third.close()
      })
    }))

  it.scopedLive("a subscription that fails ends for await and eachBatch with its typed error (a deleted topic: TopicDeleted), and closes", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "events" }, { name: "other" }] })
      const broker = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(BrokerLogLayers.layerMemory(log, 0))
      )
      const brokers = [{ host: "127.0.0.1", port: broker.port }]
      const publish = (topic: string) =>
        Effect.promise(async () => {
          const publisher = await CxlogPublisher.open({ ...anonymous, brokers, topic })
          await publisher.publish("before the delete")
          await publisher.flush(5_000)
          await publisher.close()
        })
      yield* publish("events")
      yield* publish("other")
      const looping = yield* Effect.promise(() => CxlogSubscriber.open({ ...anonymous, brokers, topic: "events" }))
      const batching = yield* Effect.promise(() => CxlogSubscriber.open({ ...anonymous, brokers, topic: "other" }))
      const seen: Array<number> = []
      const loop = (async () => {
        for await (const m of looping) seen.push(m.offset)
        return "ended without an error"
      })()
      const batches = batching.eachBatch(() => {}).then(() => "ended without an error")
      // Both have read their message, so the deletes reach subscriptions that are waiting for more.
      yield* Effect.promise(async () => {
        while (seen.length === 0 || batching.position === 0) await new Promise((resolve) => setTimeout(resolve, 10))
      })
      yield* log.topics.delete("events")
      yield* log.topics.delete("other")
      yield* Effect.promise(async () => {
        await expect(loop).rejects.toMatchObject({ _tag: "TopicDeleted", name: "events" })
        await expect(batches).rejects.toMatchObject({ _tag: "TopicDeleted", name: "other" })
        expect(seen).toEqual([0])
        // A failed subscription is over: each subscriber closed itself.
        await expect(looping.nextBatch()).rejects.toMatchObject({ name: "AbortError" })
        await expect(batching.nextBatch()).rejects.toMatchObject({ name: "AbortError" })
      })
    }))

  it.scopedLive("an abort while open waits for a broker's answer rejects open with an AbortError then, not at the connect timeout", () =>
    Effect.gen(function*() {
      // Accepts connections and never answers the handshake.
      const silent = createServer()
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void silent.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.sync(() => silent.close())
      )
      const sockets: Array<Socket> = []
      const stop = new AbortController()
      silent.on("connection", (socket) => {
        sockets.push(socket)
        stop.abort()
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => sockets.forEach((s) => s.destroy())))
      const port = (silent.address() as AddressInfo).port
      const outcome = yield* Effect.promise(() =>
        CxlogSubscriber.open({
          ...anonymous,
          brokers: [{ host: "127.0.0.1", port }],
          topic: "events",
          connectTimeoutMs: 600_000,
          signal: stop.signal
        }).then(
          () => "opened",
          (e: unknown) => (e as Error).name
        )
      ).pipe(
        Effect.timeoutFail({
          duration: "20 seconds",
          onTimeout: () => new Error("open still waiting for the silent broker 20 s after the abort")
        })
      )
      expect(outcome).toBe("AbortError")

      // A subscriber that closed no longer listens to the signal it was opened with.
      const brokers = [{ host: "127.0.0.1", port: yield* brokerPort }]
      const kept = new AbortController()
      yield* Effect.promise(async () =>
        (await CxlogSubscriber.open({ ...anonymous, brokers, topic: "events", signal: kept.signal })).close()
      )
      expect(getEventListeners(kept.signal, "abort")).toEqual([])
    }))

  it.scopedLive("a process that breaks out of its loop, or aborts open while it connects, exits by itself (nothing left open)", () =>
    Effect.gen(function*() {
      const port = yield* brokerPort
      const brokers = [{ host: "127.0.0.1", port }]
      yield* Effect.promise(async () => {
        const publisher = await CxlogPublisher.open({ ...anonymous, brokers, topic: "events" })
        for (let i = 0; i < 5; i++) await publisher.publish(`m${i}`)
        await publisher.flush(5_000)
        await publisher.close()
      })
      for (const [mode, printed] of [["break", { read: 2 }], ["abort-open", { outcome: "AbortError" }]] as const) {
        const child = yield* spawnFixture("facade-client", [mode, `${port}`])
        expect(yield* child.next()).toEqual(printed)
        const exited = yield* Deferred.await(child.exited).pipe(
          Effect.timeoutFail({
            duration: "20 seconds",
            onTimeout: () =>
              new Error(`facade-client ${mode}: still running 20 s after it printed (something keeps it alive)`)
          })
        )
        expect(exited).toEqual({ code: 0, signal: null })
      }
    }))
})
