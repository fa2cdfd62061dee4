/**
 * Channels between processes, by name: the test process holds the directory's writer (as a
 * head does) and creates the channel; writer and reader processes open it by name. In the last
 * test, no process of the test writes the directory: a `cxlog head` does, and members racing to
 * open a channel no one created get it made through the head's coordinator, all the same one.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Layer, Schedule } from "effect"
import { ringAddress } from "../../src/layers/ipc/ChannelLayout.js"
import { isPidStopped } from "../../src/layers/region/ProcessInfo.js"
import { Rings } from "../../src/services/control/Rings.js"
import { Channels } from "../../src/services/ipc/Channels.js"
import { liveChannels, liveChannelsAndRegion } from "../fixtures/channel-region.js"
import { Tick } from "../fixtures/channel-tick.js"
import { ipcHead, memberChannels } from "../fixtures/ipc-member.js"
import { type Child, spawnFixture, uniqueRegion } from "../helpers/Processes.js"

const peer = (region: string, bell: number, config: object) =>
  spawnFixture("channel-peer", [JSON.stringify({ region, bell, ...config })])

const ready = (child: Child) =>
  Effect.flatMap(
    child.next<{ ready?: boolean; error?: string; writer?: number }>(60_000),
    (m) =>
      m.ready === true ? Effect.succeed(m) : Effect.fail(new Error(`not ready: ${JSON.stringify(m)} ${child.stderr()}`))
  )

/** The test process's own Channels, creating the region and the channel. */
const head = (region: string) => Layer.build(liveChannels({ region, bell: 0, writesDirectory: true }))

describe("Channels across processes", () => {
  it.scopedLive(
    "three writers and three readers by name: every value once, in order per writer; a frame the Schema refuses is a typed error",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("channel-procs")
        const channels = Context.get(yield* head(region), Channels)
        yield* channels.open("ticks", Tick, { ringBytes: 16384 })
        const count = 2_000
        const total = 3 * count + 1
        const readers = yield* Effect.forEach([1, 2, 3], (bell) => peer(region, bell, { role: "read", total }))
        yield* Effect.forEach(readers, ready)
        const writers = yield* Effect.forEach(["a", "b", "c"], (source, i) =>
          peer(region, 4 + i, { role: "write", source, count, ...(source === "b" ? { invalidAt: count / 2 } : {}) }))
        yield* Effect.forEach(writers, ready)
        for (const writer of writers) {
          expect(yield* writer.next(60_000)).toEqual({ done: true })
        }
        for (const reader of readers) {
          expect(yield* reader.next(60_000)).toEqual({
            done: true,
            counts: { a: count, b: count, c: count },
            outOfOrder: [],
            refused: 1
          })
        }
      }),
    120_000
  )

  it.scopedLive(
    "a writer SIGKILLed mid-stream: what it committed is read in order, and its slot is taken by the next writer; a killed reader's slot too",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("channel-kill")
        const channels = Context.get(yield* head(region), Channels)
        const channel = yield* channels.open("ticks", Tick, { writerSlots: 1, readerSlots: 2, ringBytes: 8192 })
        const subscription = yield* channel.subscribe
        const held = yield* peer(region, 2, { role: "hold-reader" })
        yield* ready(held)
        const writer = yield* peer(region, 1, { role: "write-forever", source: "dead" })
        yield* ready(writer)
        // The one writer slot is the live process's.
        expect((yield* Effect.flip(channel.publisher))._tag).toBe("ChannelWritersBusy")
        // Its values so far arrive in order while it runs.
        for (let n = 1; n <= 100; n++) expect((yield* subscription.take(30_000)).value).toEqual({ source: "dead", n })
        writer.process.kill("SIGKILL")
        yield* Deferred.await(writer.exited)
        held.process.kill("SIGKILL")
        yield* Deferred.await(held.exited)
        // Its slot is taken over; the dead reader's slot no longer holds this writer back.
        const next = yield* channel.publisher
        expect(next.writer).toBe(0)
        yield* Effect.forkScoped(Effect.forEach([1, 2, 3], (n) => next.publish({ source: "next", n })))
        // Everything the dead writer committed comes first, in order, then the new writer's values.
        let n = 100
        for (;;) {
          const { value } = yield* subscription.take(30_000)
          if (value.source === "next") {
            expect(value.n).toBe(1)
            break
          }
          expect(value).toEqual({ source: "dead", n: ++n })
        }
        expect((yield* subscription.take(30_000)).value.n).toBe(2)
        // A new subscriber gets the dead reader's slot (the ring has 2: this process holds one).
        yield* channel.subscribe
      }),
    120_000
  )

  it.scopedLive(
    "a writer SIGKILLed mid-stream, read to its end; a later writer process takes its slot, and the waiting reader gets all its values, in order",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("channel-later-writer")
        const layers = yield* Layer.build(liveChannelsAndRegion({ region, bell: 0, writesDirectory: true }))
        const channel = yield* Context.get(layers, Channels).open("ticks", Tick, {
          writerSlots: 1,
          readerSlots: 1,
          ringBytes: 8192
        })
        const ring = yield* Context.get(layers, Rings).inspect(ringAddress(channel.entry, channel.shape, 0))
        const subscription = yield* channel.subscribe
        const dead = yield* peer(region, 1, { role: "write-forever", source: "dead" })
        yield* ready(dead)
        for (let n = 1; n <= 100; n++) expect((yield* subscription.take(30_000)).value).toEqual({ source: "dead", n })
        dead.process.kill("SIGKILL")
        yield* Deferred.await(dead.exited)
        // What it committed is all there will be of it: read to there, in order, with no error between.
        const committed = ring.writer().sequence
        const readToCommitted = Effect.sync(() => ring.reader(0).processed === committed)
        let n = 100
        while (!(yield* readToCommitted) || (yield* subscription.available(0))) {
          const message = yield* subscription.take(30_000)
          expect(message).toMatchObject({ value: { source: "dead", n: ++n }, writer: 0 })
        }
        // The reader now waits for the slot's next writer: a new process, which writes past the ring's room.
        const count = 1_000
        const later = yield* peer(region, 2, { role: "write", source: "later", count })
        expect(yield* ready(later)).toMatchObject({ writer: 0 })
        const first = yield* subscription.take(30_000)
        // Written from the dead writer's committed end: nothing it left uncommitted is read.
        expect(first).toEqual({ value: { source: "later", n: 1 }, writer: 0, sequence: committed })
        for (let m = 2; m <= count; m++) {
          expect(yield* subscription.take(30_000)).toMatchObject({ value: { source: "later", n: m }, writer: 0 })
        }
        expect(yield* later.next(60_000)).toEqual({ done: true })
      }),
    120_000
  )

  it.scopedLive(
    "a SIGSTOPped reader holds the writer back: ChannelFull within its bound, naming the reader's pid as stopped; continued, it reads every value in order",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("channel-frozen")
        const channels = Context.get(yield* head(region), Channels)
        const channel = yield* channels.open("ticks", Tick, {
          writerSlots: 1,
          readerSlots: 1,
          ringBytes: 4096,
          publishTimeoutMs: 300
        })
        const total = 500
        const reader = yield* peer(region, 1, { role: "read", total })
        yield* ready(reader)
        const pid = reader.process.pid!
        reader.process.kill("SIGSTOP")
        // Runs before the fixture's own finalizer kills it: nothing is left stopped.
        yield* Effect.addFinalizer(() => Effect.sync(() => reader.process.kill("SIGCONT")))
        yield* Effect.repeat(Effect.sync(() => isPidStopped(pid)), {
          until: (stopped) => stopped,
          schedule: Schedule.spaced(10)
        }).pipe(Effect.timeout("10 seconds"))
        const publisher = yield* channel.publisher
        // Far fewer values than `total` fit the ring: the next one waits out its bound, and is not written.
        let n = 0
        const full = yield* Effect.flip(Effect.forever(
          Effect.suspend(() => publisher.publish({ source: "a", n: n + 1 })).pipe(
            Effect.tap(() => Effect.sync(() => n++)),
            Effect.timeout("10 seconds")
          )
        ))
        expect(full).toMatchObject({
          _tag: "ChannelFull",
          name: "ticks",
          slowestReader: 0,
          readerPid: pid,
          readerStopped: true
        })
        expect(full.message).toContain(`pid ${pid}, stopped`)
        expect(n).toBeLessThan(total)
        reader.process.kill("SIGCONT")
        while (n < total) {
          yield* publisher.publish({ source: "a", n: ++n })
        }
        expect(yield* reader.next(60_000)).toEqual({ done: true, counts: { a: total }, outOfOrder: [], refused: 0 })
      }),
    60_000
  )

  it.scopedLive(
    "remove: ChannelInUse naming a live writer and subscriber of another process; once both are SIGKILLed their slots hold no removal back",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("channel-remove-dead")
        const channels = Context.get(yield* head(region), Channels)
        // Only opened here (pinned, neither writing nor subscribed): this process is no user of it.
        yield* channels.open("ticks", Tick, { writerSlots: 1, readerSlots: 2, ringBytes: 8192 })
        const held = yield* peer(region, 2, { role: "hold-reader" })
        yield* ready(held)
        const writer = yield* peer(region, 1, { role: "write-forever", source: "dead" })
        yield* ready(writer)
        const refused = yield* Effect.flip(channels.remove("ticks"))
        expect(refused).toMatchObject({ _tag: "ChannelInUse", name: "ticks" })
        expect(refused).toMatchObject({ pids: [held.process.pid!, writer.process.pid!].sort((a, b) => a - b) })
        writer.process.kill("SIGKILL")
        held.process.kill("SIGKILL")
        yield* Deferred.await(writer.exited)
        yield* Deferred.await(held.exited)
        // Their writer line and reader slot still name them, attached: a dead process is no user.
        yield* channels.remove("ticks")
        expect(yield* channels.list).toEqual([])
      }),
    120_000
  )

  it.scopedLive(
    "members that are not the head open a channel no one created: made once through the coordinator, found by all, values flow",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("channel-members")
        yield* ipcHead(region)
        const count = 200
        // Three processes race to open (and so create) the same name.
        const members = yield* Effect.forEach(
          [1, 2, 3],
          () => spawnFixture("channel-member", [JSON.stringify({ region, name: "quotes", count })])
        )
        const found = yield* Effect.forEach(members, ready)
        expect(new Set(found.map((m) => JSON.stringify(m))).size).toBe(1)
        // This process, a member too, finds the one they made and writes to all three.
        const channels = Context.get(yield* Layer.build(memberChannels(region)), Channels)
        const channel = yield* channels.open("quotes", Tick)
        expect({ ready: true, slot: channel.entry.slot, generation: channel.entry.generation }).toEqual(found[0])
        expect(channel.shape).toEqual({ writerSlots: 2, readerSlots: 4, ringBytes: 8192 })
        const publisher = yield* channel.publisher
        yield* publisher.publishAll(Array.from({ length: count }, (_, i) => ({ source: "test", n: i + 1 })))
        const expected = Array.from({ length: count }, (_, i) => i + 1)
        for (const member of members) expect(yield* member.next(60_000)).toEqual({ done: true, values: expected })
      }),
    120_000
  )
})
