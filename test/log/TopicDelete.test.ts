import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Schedule, Scope } from "effect"
import { topicPins } from "../../src/layers/log/TopicPins.js"
import { livePins } from "../../src/layers/region/DirectoryHolders.js"
import {
  appendSimple,
  drain,
  fillTopics,
  header,
  implementations,
  makeBatch,
  smallConfig,
  TEST_TOPICS
} from "../fixtures/log-harness.js"

const spec = (name: string) => ({ name, order: 5 as const, ackLevel: 1 as const, replicationFactor: 1 })
const names = Array.from({ length: TEST_TOPICS }, (_, i) => `t${i}`)

for (const impl of implementations) {
  describe(`Topics.delete contract: ${impl.label}`, () => {
    it.scoped("frees the name at once; its reader and appender get TopicDeleted; a topic made under the name is another", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const first = yield* cluster.topics.create(spec("t"))
        const appender = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer()
        const old = makeBatch([16, 16], 1)
        yield* appender.append("t", header(9, 1, 0, old), old.payload)
        yield* drain(sequencer)
        const cursor = yield* cluster.reader.subscribe("t")
        expect(yield* cursor.poll(() => {})).toBe(2)

        yield* cluster.topics.delete("t")
        expect(yield* Effect.flip(cluster.topics.lookup("t"))).toMatchObject({ _tag: "TopicNotFound" })
        expect((yield* cluster.topics.list).map((t) => t.name)).toEqual([])
        expect(yield* Effect.flip(cluster.topics.delete("t"))).toMatchObject({ _tag: "TopicNotFound", name: "t" })
        // What held the topic learns it at its next use.
        expect(yield* Effect.flip(cursor.poll(() => {}))).toMatchObject({ _tag: "TopicDeleted", name: "t" })
        expect(cursor.retained(0)).toBe(false)
        expect(yield* Effect.flip(appender.append("t", header(9, 1, 1, old), old.payload))).toMatchObject({
          _tag: "TopicDeleted",
          name: "t"
        })
        // And so on while no topic has the name (a batch received meanwhile is refused as deleted, not unknown).
        expect(yield* Effect.flip(appender.append("t", header(9, 1, 1, old), old.payload))).toMatchObject({
          _tag: "TopicDeleted"
        })
        yield* drain(sequencer)

        // The name makes a new topic: a generation of its own, offsets from 0, none of the old messages.
        const second = yield* cluster.topics.create(spec("t"))
        expect(second.generation).not.toBe(first.generation)
        const fresh = makeBatch([8], 2)
        yield* appender.append("t", header(10, 1, 0, fresh), fresh.payload)
        yield* drain(sequencer)
        const reread = yield* cluster.reader.subscribe("t")
        const seen: Array<number> = []
        yield* reread.poll((m) => void seen.push(m.totalOrder * 1000 + m.batch.clientId))
        expect(seen).toEqual([10])
      }))

    it.scopedLive("an append waiting for room fails with TopicDeleted once its topic is deleted, not at its timeout", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec("t"))
        // No sequencer: the full PBR never frees, so only the delete can end the wait before its timeout.
        const appender = yield* cluster.appender(0, { timeoutMs: 20_000 })
        for (let seq = 0; seq < smallConfig.pbrSlots; seq++) yield* appendSimple(appender, "t", 1, 0, seq)
        const waiting = yield* Effect.fork(Effect.flip(appendSimple(appender, "t", 1, 0, smallConfig.pbrSlots)))
        // Suspended: it found no room and waits for some (bounded: never suspended fails the test).
        yield* Effect.repeat(Fiber.status(waiting), {
          until: (status) => status._tag === "Suspended",
          schedule: Schedule.spaced("2 millis")
        }).pipe(Effect.timeout("5 seconds"))
        yield* cluster.topics.delete("t")
        expect(yield* Fiber.join(waiting)).toMatchObject({ _tag: "TopicDeleted", name: "t" })
      }))

    it.scoped("without the head's copies on disk (DiskCopies), refuses a topic with one, and an unknown topic, with typed errors", () =>
      Effect.gen(function*() {
        const { topics } = yield* impl.make()
        yield* topics.create({ name: "kept", order: 5, ackLevel: 2, replicationFactor: 2 })
        const refused = yield* Effect.flip(topics.delete("kept"))
        expect(refused).toMatchObject({ _tag: "TopicNotDeletable", name: "kept" })
        expect(refused.message).toContain("copy on disk (replication factor 2), which only its head deletes")
        expect((yield* topics.list).map((t) => t.name)).toEqual(["kept"])
        expect(yield* Effect.flip(topics.delete("nope"))).toMatchObject({ _tag: "TopicNotFound" })
      }))

    it.scoped("a deleted topic's memory comes back: a full heap takes a new topic after a delete", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const { topics } = cluster
        // Every topic with a lane for each writer: the heap is full.
        const appenders = yield* fillTopics(cluster, smallConfig, names)
        expect(yield* Effect.flip(topics.create(spec("next")))).toMatchObject({ _tag: "RegionFull" })
        yield* topics.delete("t1")
        // Each writer lets it go at its next use; this process's tick moves its pins of the others past the delete.
        for (const appender of appenders) yield* Effect.flip(appendSimple(appender, "t1", 99, 9, 1))
        if (cluster.region !== undefined) topicPins(cluster.region.memory, cluster.region.area).tick()
        expect((yield* topics.create(spec("next"))).name).toBe("next")
      }))
  })
}

describe("a deleted topic's memory in the region", () => {
  for (const impl of implementations.filter((i) => i.label.startsWith("layer ("))) {
    it.scoped(`is reused only once no cursor of this process can still read it (${impl.label})`, () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const appenders = yield* fillTopics(cluster, smallConfig, names)
        const appender = appenders[0]!
        const sequencer = yield* cluster.sequencer()
        const batch = makeBatch([64], 3)
        yield* appender.append("t0", header(9, 1, 0, batch), batch.payload)
        yield* drain(sequencer)
        const { area } = cluster.region!
        const extent = area.placeOf((yield* cluster.topics.lookup("t0")).id)
        const readerScope = yield* Scope.make()
        const cursor = yield* cluster.reader.subscribe("t0").pipe(Scope.extend(readerScope))
        let payload: Uint8Array | undefined
        yield* cursor.poll((m) => void (payload = m.payload))
        const before = Uint8Array.from(payload!)

        yield* cluster.topics.delete("t0")
        // The appenders and the sequencer let it go at their next use.
        for (const each of appenders) yield* Effect.flip(each.append("t0", header(9, 1, 1, batch), batch.payload))
        yield* drain(sequencer)
        // This process's tick moves the pins of the topics it still uses (the sequencer's t1..t3) past the delete.
        topicPins(cluster.region!.memory, area).tick()
        // The cursor still holds it: the heap has no room, and says who holds the space.
        const full = yield* Effect.flip(cluster.topics.create(spec("next")))
        expect(full).toMatchObject({ _tag: "RegionFull" })
        expect(full.message).toContain(`pinned by pid ${process.pid}`)
        // The payload the cursor handed out is intact: nothing reused the extent.
        expect(Uint8Array.from(payload!)).toEqual(before)

        yield* Scope.close(readerScope, Exit.void)
        const next = yield* cluster.topics.create(spec("next"))
        expect(area.placeOf(next.id).offset).toBe(extent.offset)
      }))
  }

  for (const impl of implementations.filter((i) => i.label.startsWith("layer ("))) {
    it.scoped(`a hold asked for after the delete is refused, and leaves no pin (${impl.label})`, () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const { memory, area } = cluster.region!
        // Looked up before the delete, held after it: by then nothing kept the extent, which may be another's.
        const gone = yield* cluster.topics.create(spec("gone"))
        yield* cluster.topics.delete("gone")
        const hold = topicPins(memory, area).hold(gone, () => {})
        expect(hold).toMatchObject({ _tag: "TopicDeleted", name: "gone" })
        // The pin it announced first is gone too: it would hold every later deletion's memory.
        expect(livePins(memory, area.directory).filter((p) => p.pid === process.pid)).toEqual([])
      }))
  }

  for (const impl of implementations.filter((i) => i.label.startsWith("layer ("))) {
    it.scoped(`a hold on a deleted topic is told once a new topic is read in its slot, before any tick (${impl.label})`, () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const { memory, area } = cluster.region!
        const pins = topicPins(memory, area)
        const others = yield* Effect.forEach(["a", "b"], (name) => cluster.topics.create(spec(name)))
        const first = yield* cluster.topics.create(spec("reused"))
        const told: Array<string> = []
        const holds = [...others, first].map((info) => pins.hold(info, () => told.push(info.name)))
        yield* cluster.topics.delete("reused")
        // The same name probes to the same slot: a new topic there, read by this process.
        const again = yield* cluster.topics.create(spec("reused"))
        expect(again.id).toBe(first.id)
        expect(again.generation).toBeGreaterThan(first.generation)
        expect(told).toEqual(["reused"])
        for (const hold of holds) if ("release" in hold) hold.release()
      }))
  }
})
