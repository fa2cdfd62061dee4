/**
 * A named consumer's subscriber line belongs to the consumer whatever its pid word says: a
 * creator killed after the line became the consumer's but before it cleared its own pid leaves
 * that pid behind, and no other claim (a durable subscriber, another consumer) may take the line
 * over as a dead owner's — that would erase the consumer and its committed offset.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ParticipantLineView, SubscriberLineView } from "../../src/layers/log/RecordViews.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { ConsumerTableFull } from "../../src/services/log/Consumers.js"
import { consumersOf, regionCluster, smallConfig } from "../fixtures/log-harness.js"
import { laterShortTag, shortTagOf } from "../helpers/StartTags.js"

/** A pid no process has (above any pid_max): `kill(pid, 0)` finds nobody. */
const DEAD_PID = 0x3fffffff

/** A cluster whose topic "t" has consumer "c" at offset 7, no member, and the consumer's line. */
const consumerC = Effect.gen(function*() {
  const cluster = yield* regionCluster(CxlMemoryLayers.make)()
  const { memory, area } = cluster.region!
  const { id: topicId } = yield* cluster.topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
  const consumers = yield* consumersOf(cluster)
  yield* Effect.scoped(consumers.join("t", "c", { offset: 7, globalSeq: 3 }))
  const lines = new SubscriberLineView(memory)
  const line = Array.from({ length: smallConfig.subscriberSlots }, (_, s) => area.subscriber(topicId, s)).find((l) =>
    lines.durable(l) === 2
  )
  expect(line).toBeDefined()
  return { cluster, memory, consumers, lines, line: line! }
})

describe("a named consumer's line", () => {
  it.scoped("left with its killed creator's pid is still the consumer's: durable subscribers and other consumers claim other lines", () =>
    Effect.gen(function*() {
      const { cluster, memory, consumers, lines, line } = yield* consumerC
      // Its creator killed between making the line the consumer's and clearing the pid word (member still its own).
      new ParticipantLineView(memory).storePid(line, DEAD_PID)
      lines.storeMember(line, DEAD_PID, 0)

      // Every other line is claimed; the consumer's stays its own.
      const durable = Array.from(
        { length: smallConfig.subscriberSlots - 2 },
        () => cluster.reader.subscribe("t", { durable: true })
      )
      yield* Effect.all(durable)
      yield* consumers.join("t", "d", { offset: 0, globalSeq: 0 })
      const full = yield* Effect.either(cluster.reader.subscribe("t", { durable: true }))
      expect((yield* consumers.list("t")).map(({ name, committed }) => ({ name, committed }))).toEqual([
        { name: "c", committed: 7 },
        { name: "d", committed: 0 }
      ])
      expect(full._tag === "Left" ? full.left._tag : "a durable subscriber took a line").toBe("SubscriberTableFull")
      // And a new member takes it over from the dead one, at its committed offset.
      const member = yield* consumers.join("t", "c", { offset: 0, globalSeq: 0 })
      expect([member.created, member.committed()]).toEqual([false, 7])
    }))

  it.scoped("a member or deleter whose pid a later process now has is gone: a new member joins, remove deletes; the live one's keeps it", () =>
    Effect.gen(function*() {
      const { consumers, lines, line } = yield* consumerC
      const other = process.ppid
      const live = shortTagOf(other)

      // A member: the live process's own tag holds the consumer, a later process's under its pid does not.
      lines.storeMember(line, other, live)
      expect(yield* Effect.flip(Effect.scoped(consumers.join("t", "c", { offset: 0, globalSeq: 0 })))).toMatchObject({
        _tag: "ConsumerBusy",
        pid: other
      })
      lines.storeMember(line, other, laterShortTag(live))
      expect(
        yield* Effect.scoped(
          Effect.map(consumers.join("t", "c", { offset: 0, globalSeq: 0 }), (m) => [m.created, m.committed()])
        )
      ).toEqual([false, 7])

      // A deleter's mark, likewise.
      lines.storeMember(line, -other, live)
      expect(yield* Effect.flip(consumers.remove("t", "c"))).toMatchObject({ _tag: "ConsumerBeingDeleted", pid: other })
      lines.storeMember(line, -other, laterShortTag(live))
      expect(yield* consumers.remove("t", "c")).toBe(true)
      expect(yield* consumers.list("t")).toEqual([])
    }))
})

describe("cxlog's own consumers (names starting with $: a consumer group's hold)", () => {
  it.scoped("an app's join and remove refuse them and its list leaves them out; `own` takes only them", () =>
    Effect.gen(function*() {
      const { consumers } = yield* consumerC
      yield* consumers.own.join("t", "$group:1.1", { offset: 2, globalSeq: 1 })
      const refused = yield* Effect.flip(Effect.scoped(consumers.join("t", "$group:1.1", { offset: 0, globalSeq: 0 })))
      expect(refused).toMatchObject({ _tag: "ConsumerNameInvalid", name: "$group:1.1" })
      expect(refused.message).toMatch(/cxlog's own/)
      expect(yield* Effect.flip(consumers.remove("t", "$group:1.1"))).toMatchObject({ _tag: "ConsumerNameInvalid" })
      expect(yield* Effect.flip(Effect.scoped(consumers.own.join("t", "c", { offset: 0, globalSeq: 0 }))))
        .toMatchObject(
          { _tag: "ConsumerNameInvalid", name: "c" }
        )
      expect((yield* consumers.list("t")).map((c) => c.name)).toEqual(["c"])
      expect((yield* consumers.own.list("t")).map(({ name, committed }) => ({ name, committed }))).toEqual([
        { name: "$group:1.1", committed: 2 }
      ])
    }))
})

describe("a full table of consumer lines", () => {
  it("is named with its size when known, and without a number when a broker's refusal did not say it", () => {
    expect(new ConsumerTableFull({ topic: "t", slots: 8 }).message).toContain("all 8 subscriber lines are taken")
    expect(new ConsumerTableFull({ topic: "t", slots: 0 }).message).toContain("all its subscriber lines are taken")
  })
})
