/**
 * The Effect layers find the local user's credentials as the Promise facades and the CLI do: a
 * TCP publisher or remote subscriber given no `credentials` authenticates with the secret file
 * the head wrote for its `region`, and one with neither is refused with words that name the
 * library's option as well as the CLI's flag.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { join } from "node:path"
import {
  defaultCredentialPath,
  defaultSecretPath,
  ensureRegionCredentials,
  removeRegionCredentials
} from "../../src/layers/net/Auth.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import * as SubscriberRemoteLayers from "../../src/layers/net/SubscriberRemote.js"
import { Publisher } from "../../src/services/net/Publisher.js"
import { Subscriber } from "../../src/services/net/Subscriber.js"
import { tempDir } from "../helpers/Processes.js"

/**
 * A broker that authenticates with `region`'s default credential file, which this scope makes
 * (with its local secret file, as a head does) and removes; or with the file at `given`, made
 * with a user of its own, as one an operator gives (`--credentials`): no head writes a secret file for it.
 */
const authenticatingBroker = (region: string, given?: string) =>
  Effect.gen(function*() {
    const files = given === undefined
      ? [defaultCredentialPath(region), defaultSecretPath(region)] as const
      : [given, `${given}.alice`] as const
    yield* Effect.acquireRelease(Effect.sync(() => ensureRegionCredentials(...files)), () =>
      Effect.sync(() => removeRegionCredentials(...files)))
    const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "events" }] })
    const broker = yield* BrokerLayers.make({ credentials: files[0] }).pipe(
      Effect.provide(BrokerLogLayers.layerMemory(log, 0))
    )
    return [{ host: "127.0.0.1", port: broker.port }]
  })

const publishOne = Effect.gen(function*() {
  const publisher = yield* Publisher
  yield* publisher.publish(new TextEncoder().encode("hello"))
  yield* publisher.flush(5_000)
})

describe("the Effect layers' credentials", () => {
  it.scopedLive("without credentials, PublisherLayers.layer and the remote subscriber authenticate with the region's local secret file", () =>
    Effect.gen(function*() {
      const region = `cxlog-test-layers-${process.pid}-${Math.random().toString(16).slice(2, 10)}`
      const brokers = yield* authenticatingBroker(region)
      yield* publishOne.pipe(Effect.provide(PublisherLayers.layer({ brokers, topic: "events", region })))
      const read = yield* Effect.gen(function*() {
        const subscriber = yield* Subscriber
        const subscription = yield* subscriber.subscribe("events", { from: "earliest" })
        const batch = yield* subscription.pull
        return batch.map((message) => new TextDecoder().decode(message.payload))
      }).pipe(Effect.scoped, Effect.provide(SubscriberRemoteLayers.layerRemote({ brokers, region })))
      expect(read).toEqual(["hello"])
    }))

  it.scopedLive("given no region either, a client takes the CXLOG_REGION of its environment, as the CLI does", () =>
    Effect.gen(function*() {
      const region = `cxlog-test-layers-${process.pid}-${Math.random().toString(16).slice(2, 10)}`
      const brokers = yield* authenticatingBroker(region)
      const before = process.env["CXLOG_REGION"]
      yield* Effect.acquireRelease(Effect.sync(() => (process.env["CXLOG_REGION"] = region)), () =>
        Effect.sync(() => {
          if (before === undefined) delete process.env["CXLOG_REGION"]
          else process.env["CXLOG_REGION"] = before
        }))
      yield* publishOne.pipe(Effect.provide(PublisherLayers.layer({ brokers, topic: "events" })))
      process.env["CXLOG_REGION"] = `${region}-none`
      const refused = yield* Effect.flip(
        publishOne.pipe(Effect.provide(PublisherLayers.layer({ brokers, topic: "events" })))
      )
      expect(refused).toMatchObject({ _tag: "BrokerRejected", code: "auth-required" })
    }))

  it.scopedLive("a layer with no credentials and no secret file is refused auth-required, naming the credentials option and the flag", () =>
    Effect.gen(function*() {
      const region = `cxlog-test-layers-${process.pid}-${Math.random().toString(16).slice(2, 10)}`
      const brokers = yield* authenticatingBroker(region)
      const refused = yield* Effect.flip(
        publishOne.pipe(Effect.provide(PublisherLayers.layer({ brokers, topic: "events", region: `${region}-none` })))
      )
      expect(refused).toMatchObject({ _tag: "BrokerRejected", code: "auth-required" })
      expect(refused.message).toContain("`credentials` option")
      expect(refused.message).toContain("--secret-file")
      // The head wrote its region's local secret file there: a client of the broker's host may name the region instead.
      expect(refused.message).toContain("`region` naming its region to use the local secret file the head wrote")
    }))

  it.scopedLive("a broker's credential file given by path has no local secret file: its auth-required does not offer one", () =>
    Effect.gen(function*() {
      const region = `cxlog-test-layers-${process.pid}-${Math.random().toString(16).slice(2, 10)}`
      const brokers = yield* authenticatingBroker(region, join(yield* tempDir("cxlog-layers-"), "users.json"))
      const refused = yield* Effect.flip(
        publishOne.pipe(Effect.provide(PublisherLayers.layer({ brokers, topic: "events", region })))
      )
      expect(refused).toMatchObject({ _tag: "BrokerRejected", code: "auth-required" })
      expect(refused.message).toContain("`credentials` option ({ user, secret }, from `cxlog user add`)")
      expect(refused.message).toContain("--secret-file")
      expect(refused.message).not.toMatch(/secret file the head wrote|`region`/)
    }))
})
