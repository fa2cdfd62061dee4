/**
 * A pattern subscription as a named consumer through a broker (docs/security.md): each topic its
 * patterns find later joins that consumer there, so it is held to the user's consume right as it
 * is then, as to its read right: a user no longer allowed to be the consumer joins it on no
 * further topic, while the streams it has go on.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Schedule, Stream } from "effect"
import { join } from "node:path"
import { type Credentials, readCredentialFile, upsertUser, userRecord } from "../../src/layers/net/Auth.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { makeRemote } from "../../src/layers/net/SubscriberRemote.js"
import { Consumers } from "../../src/services/log/Consumers.js"
import { Topics } from "../../src/services/log/Topics.js"
import { tempDir } from "../helpers/Processes.js"

const ALICE: Credentials = { user: "alice", secret: "alice-secret-1" }

const privateDir = tempDir("cxlog-pattern-consumer-")

/** Bounds of this test's waits: a discovery pass comes every 250 ms. */
const BOUND_MS = 10_000

describe("a pattern subscription's named consumer", () => {
  it.scopedLive("a topic found after the user lost the consume right on the consumer is not joined as it; the streams it has go on", () =>
    Effect.gen(function*() {
      const path = join(yield* privateDir, "users")
      upsertUser(path, userRecord(ALICE.user, ALICE.secret, { publish: [], read: ["*"] }, undefined, 64))
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      // The broker's look at the topics, counted: each discovery pass starts with one.
      let looks = 0
      const context = log.forBroker(0)
      const topics = Context.get(context, Topics)
      const counted = Context.add(context, Topics, { ...topics, list: Effect.tap(topics.list, () => void looks++) })
      const server = yield* BrokerLayers.make({ credentials: path }).pipe(Effect.provide(counted))
      const subscription = yield* makeRemote({
        brokers: [{ host: "127.0.0.1", port: server.port }],
        credentials: ALICE,
        connectTimeoutMs: 2_000
      }).subscribeTopics(["n.*"], { consumer: "billing" })
      yield* Effect.forkScoped(Stream.runDrain(subscription.batches))
      const spec = { order: 5 as const, ackLevel: 1 as const, replicationFactor: 1 }
      const bounded = <A>(what: string, effect: Effect.Effect<A>) =>
        effect.pipe(
          Effect.timeoutFail({ duration: BOUND_MS, onTimeout: () => new Error(`${what} within ${BOUND_MS} ms`) })
        )
      yield* log.topics.create({ name: "n.0", ...spec })
      yield* bounded(
        "n.0 was not found",
        Effect.repeat(Effect.sync(subscription.topics), {
          until: (found) => found.includes("n.0"),
          schedule: Schedule.spaced("20 millis")
        })
      )
      const record = readCredentialFile(path).users.find((u) => u.name === ALICE.user)!
      upsertUser(path, { ...record, consume: ["reports-*"] })
      yield* log.topics.create({ name: "n.1", ...spec })
      // A pass that started after n.1 was made has ended once the pass after it starts.
      const made = looks
      yield* bounded(
        "no two discovery passes came",
        Effect.repeat(Effect.sync(() => looks), { until: (n) => n >= made + 2, schedule: Schedule.spaced("20 millis") })
      )
      const consumers = Context.get(context, Consumers)
      expect((yield* consumers.list("n.1")).map((c) => c.name)).toEqual([])
      expect(subscription.topics()).toEqual(["n.0"])
      expect((yield* consumers.list("n.0")).map((c) => c.name)).toEqual(["billing"])
    }))
})
