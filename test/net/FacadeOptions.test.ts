/**
 * The Promise facades take whatever a JavaScript caller passes: options of the wrong type or out
 * of range are refused in one typed line naming the option, before anything connects — not a
 * TypeError from deep inside, a timeout that blames the broker, or a value clamped or kept in
 * silence. A subscription that failed closes its subscriber; a one-topic subscriber refuses a
 * commit naming another topic.
 */
import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Layer } from "effect"
import { readFileSync } from "node:fs"
import { CxlogGroup, type CxlogGroupOptions } from "../../src/layers/groups/CxlogGroup.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { CxlogAdmin, type CxlogAdminOptions } from "../../src/layers/net/CxlogAdmin.js"
import { CxlogPublisher } from "../../src/layers/net/CxlogPublisher.js"
import { CxlogSubscriber, type CxlogSubscriberOptions } from "../../src/layers/net/CxlogSubscriber.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import { makeRemoteTopics } from "../../src/layers/net/TopicsRemote.js"
import type { PublisherOptions } from "../../src/services/net/Publisher.js"
import { anonymous } from "../fixtures/anonymous-region.js"
import { certificates } from "../fixtures/tls-certificates.js"

const brokers = [{ host: "127.0.0.1", port: 7400 }]

const refused = (opening: Promise<unknown>) =>
  opening.then(() => undefined, (e: { _tag?: string; message: string }) => e)

describe("the Promise facades' options", () => {
  it.live("a subscriber's connection options of the wrong type or range: InvalidSubscribeOptions naming each", () =>
    Effect.promise(async () => {
      const cases: ReadonlyArray<readonly [Record<string, unknown>, string]> = [
        [{ bufferBytes: -1 }, "bufferBytes must be a whole number of bytes, at least 65536 (64 KiB), not -1"],
        [{ bufferBytes: 10 }, "bufferBytes must be a whole number of bytes, at least 65536"],
        [{ credit: 1.5 }, "credit must be a whole number of frames from 1 to 4096, not 1.5"],
        [{ credit: "10" }, `credit must be a whole number of frames from 1 to 4096, not "10"`],
        [{ credit: 0 }, "credit must be a whole number of frames from 1 to 4096, not 0"],
        [{ connectTimeoutMs: -1 }, "connectTimeoutMs must be a number of milliseconds from 1 to"],
        [{ consumer: 5 }, "consumer must be a consumer's name, not 5"],
        [{ region: 5 }, "region must be a region's name, not 5"],
        [
          { credentials: "alice:secret" },
          `credentials must be { user, secret } (from cxlog user add), not "alice:secret"`
        ],
        [{ brokers: "127.0.0.1:7400" }, `brokers is a list of addresses`],
        [{ signal: {} }, "signal must be an AbortSignal (an AbortController's signal), not [object Object]"]
      ]
      for (const [given, says] of cases) {
        const options = { brokers, topic: "events", ...given } as CxlogSubscriberOptions
        const error = await refused(CxlogSubscriber.open(options))
        expect(error, JSON.stringify(given)).toMatchObject({ _tag: "InvalidSubscribeOptions" })
        expect(error!.message, JSON.stringify(given)).toContain(says)
      }
      expect(await refused(CxlogSubscriber.open(undefined as unknown as CxlogSubscriberOptions))).toMatchObject({
        _tag: "InvalidSubscribeOptions",
        message: expect.stringContaining("a subscriber takes an options object")
      })
    }))

  it.live("a publisher's: no options object, a timeout out of range, openWith's second argument, flush's bound", () =>
    Effect.promise(async () => {
      expect(await refused(CxlogPublisher.open(undefined as unknown as PublisherOptions))).toMatchObject({
        _tag: "InvalidPublisherOptions",
        message: expect.stringContaining("a publisher's options are an object, not undefined")
      })
      for (
        const [given, says] of [
          [{ connectTimeoutMs: -5 }, "connectTimeoutMs -5 must be a number of milliseconds from 1 to"],
          [{ reconnectDelayMs: -1 }, "reconnectDelayMs -1 must be a number of milliseconds from 0 to"]
        ] as const
      ) {
        const error = await refused(CxlogPublisher.open({ ...anonymous, brokers, topic: "events", ...given }))
        expect(error).toMatchObject({ _tag: "InvalidPublisherOptions", message: expect.stringContaining(says) })
      }
      // Refused before its layer is built: a connection's options given where the ACK timeout goes.
      expect(
        await refused(CxlogPublisher.openWith(Layer.empty as never, { brokers } as unknown as number))
      ).toMatchObject({
        _tag: "InvalidPublisherOptions",
        message: expect.stringContaining(`openWith(layer, ackTimeoutMs) takes the ACK timeout in milliseconds`)
      })
    }))

  it.live("an admin client's: no brokers, brokers as text", () =>
    Effect.promise(async () => {
      for (
        const [given, says] of [
          [{ region: "cxlog" }, "brokers is a list of addresses"],
          [
            { brokers: "127.0.0.1:7400" },
            `brokers is a list of addresses ([{ host: "127.0.0.1", port: 7400 }]), not "127.0.0.1:7400" (a string)`
          ]
        ] as const
      ) {
        const error = await refused(CxlogAdmin.open(given as unknown as CxlogAdminOptions))
        expect(error).toMatchObject({ _tag: "InvalidAdminOptions", message: expect.stringContaining(says) })
      }
    }))

  it.live("a remote group member's: a timeout out of range or not a number, brokers as text, a signal that is none: InvalidGroupSpec naming each", () =>
    Effect.promise(async () => {
      // Nothing listens on port 1: refused there, the member would blame the broker.
      const nowhere = [{ host: "127.0.0.1", port: 1 }]
      for (
        const [given, says] of [
          [{ connectTimeoutMs: -1 }, "connectTimeoutMs must be a number of milliseconds from 1 to"],
          [
            { requestTimeoutMs: "5000" },
            `requestTimeoutMs must be a number of milliseconds from 1 to 2147483647, not "5000"`
          ],
          [{ brokers: "127.0.0.1:7400" }, `brokers is a list of addresses`],
          [{ signal: {} }, "signal must be an AbortSignal (an AbortController's signal), not [object Object]"]
        ] as const
      ) {
        const options = { ...anonymous, brokers: nowhere, group: "workers", ...given } as CxlogGroupOptions
        const error = await refused(CxlogGroup.open(options as Parameters<typeof CxlogGroup.open>[0]))
        expect(error, JSON.stringify(given)).toMatchObject({ _tag: "InvalidGroupSpec", group: "workers" })
        expect(error!.message, JSON.stringify(given)).toContain(says)
      }
    }))

  it.live("a duration option that is no duration: every facade refuses it with its typed error, naming it", () =>
    Effect.promise(async () => {
      const nowhere = [{ host: "127.0.0.1", port: 1 }]
      const says = (name: string) => ({
        message: expect.stringContaining(
          `${name} must be a duration ("5 seconds", Duration.seconds(5)) or a number of milliseconds, not "5 sekonds"`
        )
      })
      // What a JavaScript caller may give (TypeScript would not take it).
      const bad = "5 sekonds" as Duration.DurationInput
      const options = { ...anonymous, brokers: nowhere }
      expect({
        ackTimeout: await refused(CxlogPublisher.open({ ...options, topic: "events", ackTimeout: bad })),
        connectTimeout: await refused(CxlogPublisher.open({ ...options, topic: "events", connectTimeout: bad })),
        subscriber: await refused(CxlogSubscriber.open({ ...options, topic: "events", connectTimeout: bad })),
        admin: await refused(CxlogAdmin.open({ ...options, requestTimeout: bad })),
        member: await refused(CxlogGroup.open({ ...options, group: "workers", connectTimeout: bad }))
      }).toMatchObject({
        ackTimeout: { _tag: "InvalidPublisherOptions", ...says("ackTimeout") },
        connectTimeout: { _tag: "InvalidPublisherOptions", ...says("connectTimeout") },
        subscriber: { _tag: "InvalidSubscribeOptions", ...says("connectTimeout") },
        admin: { _tag: "InvalidAdminOptions", ...says("requestTimeout") },
        member: { _tag: "InvalidGroupSpec", ...says("connectTimeout") }
      })
    }))

  it.scopedLive("TLS options no connection can be made with: every client refuses them at open, naming them", () =>
    Effect.gen(function*() {
      const certs = yield* certificates
      const cert = readFileSync(certs.cert)
      // Nothing listens on port 1: a socket made before the refusal would fail there, unheard, and end the process.
      const nowhere = [{ host: "127.0.0.1", port: 1 }]
      const cases = [
        [
          { cert, key: readFileSync(certs.key.replace(/broker\.key$/, "ca.key")) },
          "tls.key is not the private key of tls.cert ("
        ],
        [{ ca: certs.ca, cert }, "tls.cert without tls.key: a client certificate needs both"],
        [{ cert, key: Buffer.from("not a key") }, "tls.cert, tls.key: not a TLS configuration Node's TLS takes: "],
        [{ ca: 5 }, "tls.ca must be PEM bytes (a Buffer or Uint8Array), not number"],
        // Node's TLS takes these as a CA that trusts nothing: every broker's certificate would be refused.
        [{ ca: readFileSync(certs.key) }, "tls.ca holds no certificate (no -----BEGIN CERTIFICATE----- block)"],
        [
          { ca: Buffer.from("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n") },
          "tls.ca holds a certificate that does not parse (block 1 of 1): "
        ]
      ] as const
      for (const [tls, says] of cases) {
        const options = { ...anonymous, brokers: nowhere, tls: tls as never }
        const named = { message: expect.stringContaining(says) }
        const facades = yield* Effect.promise(async () => ({
          publisher: await refused(CxlogPublisher.open({ ...options, topic: "events" })),
          subscriber: await refused(CxlogSubscriber.open({ ...options, topic: "events" })),
          admin: await refused(CxlogAdmin.open(options))
        }))
        expect(facades, says).toMatchObject({
          publisher: { _tag: "InvalidPublisherOptions", ...named },
          subscriber: { _tag: "InvalidSubscribeOptions", ...named },
          admin: { _tag: "InvalidAdminOptions", ...named }
        })
        // The Effect API's: a publisher's layer, and a service through brokers (its calls).
        const publisher = yield* Effect.flip(Effect.scoped(PublisherLayers.make({ ...options, topic: "events" })))
        expect(publisher, says).toMatchObject({ _tag: "InvalidPublisherOptions", ...named })
        const topics = yield* Effect.scoped(Effect.flatMap(makeRemoteTopics(options), (t) => Effect.flip(t.connect)))
        expect(topics, says).toMatchObject({ _tag: "TopicsUnavailable", ...named })
      }
    }))

  it.scopedLive("a failed subscription closes its subscriber; a one-topic subscriber refuses a commit naming another topic; flush's bound is a number", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "events" }] })
      const broker = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(BrokerLogLayers.layerMemory(log, 0))
      )
      const live = [{ host: "127.0.0.1", port: broker.port }]
      yield* Effect.promise(async () => {
        const publisher = await CxlogPublisher.open({ ...anonymous, brokers: live, topic: "events" })
        await expect(publisher.flush("abc" as unknown as number)).rejects.toMatchObject({
          _tag: "InvalidPublisherOptions",
          message: expect.stringContaining("flush takes a timeout in milliseconds, not abc")
        })
        await publisher.publish("small")
        await publisher.publish("x".repeat(4096))
        await publisher.flush(5_000)
        await publisher.close()

        const named = await CxlogSubscriber.open({
          ...anonymous,
          brokers: live,
          topic: "events",
          consumer: "c",
          autoCommit: "off"
        })
        await named.nextBatch()
        await expect(named.commit({ topic: "other", offset: 1 })).rejects.toMatchObject({
          _tag: "CommitRejected",
          reason: "this subscriber reads topic events alone"
        })
        await named.close()

        // A batch over the subscriber's own bound fails the subscription: the subscriber closes with it.
        const small = await CxlogSubscriber.open({ ...anonymous, brokers: live, topic: "events", maxBatchBytes: 1024 })
        let failure: unknown
        for (let i = 0; i < 3 && failure === undefined; i++) {
          failure = await small.nextBatch().then(() => undefined, (e) => e)
        }
        expect(failure).toMatchObject({ _tag: "SubscriberConnectionFailed" })
        await expect(small.nextBatch()).rejects.toMatchObject({ name: "AbortError" })
      })
    }))
})
