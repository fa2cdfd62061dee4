import { describe, expect, it } from "@effect/vitest"
import {
  Chunk,
  Deferred,
  Effect,
  Exit,
  Fiber,
  Logger,
  Option,
  Runtime,
  Schedule,
  Scope,
  Stream,
  TestClock,
  TestServices
} from "effect"
import * as RpcLayers from "../../src/layers/control/Rpc.js"
import { Rings, type RingWriter } from "../../src/services/control/Rings.js"
import { type DeferredReply, handle } from "../../src/services/control/Rpc.js"
import { openRegionRings, type OpenRings, ringLayers } from "../fixtures/ring-harness.js"
import {
  Add,
  AddWithStrings,
  Announcement,
  Boom,
  Later,
  layout,
  Overdrawn,
  Release,
  Sleep,
  Unknown,
  Wait,
  Withdraw
} from "../fixtures/rpc-methods.js"
import { parked } from "../helpers/Parked.js"
import { until } from "../helpers/ServeProcess.js"

const handlers = (waiting: Map<string, DeferredReply<string, never>>) => [
  handle(Add, ({ a, b }) => Effect.succeed(a + b)),
  handle(
    Withdraw,
    (
      { amount }
    ) => (amount > 100 ? Effect.fail(new Overdrawn({ balance: 100 - amount })) : Effect.succeed(100 - amount))
  ),
  handle(Later, ({ at, days }) => Effect.succeed(new Date(at.getTime() + days * 86_400_000))),
  handle(Wait, ({ name }, request) =>
    Effect.sync(() => {
      const reply = request.defer()
      waiting.set(name, reply)
      return reply
    })),
  handle(Release, ({ name }) =>
    Effect.gen(function*() {
      const reply = waiting.get(name)
      if (reply === undefined) return 0
      waiting.delete(name)
      yield* reply.succeed(`released ${name}`)
      return 1
    })),
  handle(Sleep, ({ ms }) => Effect.sleep(ms)),
  handle(Boom, () => Effect.die(new Error("kaboom")))
]

const setup = (open: OpenRings) =>
  Effect.gen(function*() {
    const { rings } = yield* open()
    const rpc = yield* RpcLayers.make.pipe(Effect.provideService(Rings, rings))
    const { replies, requests } = layout(65536)
    const waiting = new Map<string, DeferredReply<string, never>>()
    const server = yield* rpc.serve({ replies, requests }, handlers(waiting))
    const [first, second] = yield* Effect.forEach([0, 1], (client) =>
      rpc.client({ client, requests: requests[client]!.ring, replies }))
    return { rings, server, first: first!, second: second!, requests, waiting }
  })

const contract = (label: string, open: OpenRings) =>
  describe(`Rpc over ${label}`, () => {
    it.scopedLive("round trips: a result, a Schema-transformed payload and result, a typed failure", () =>
      Effect.gen(function*() {
        const { first } = yield* setup(open)
        expect(yield* first.call(Add, { a: 2, b: 40 })).toBe(42)
        expect(yield* first.call(Later, { at: new Date("2024-02-28T00:00:00Z"), days: 2 })).toEqual(
          new Date("2024-03-01T00:00:00Z")
        )
        expect(yield* first.call(Withdraw, { amount: 30 })).toBe(70)
        const overdrawn = yield* Effect.flip(first.call(Withdraw, { amount: 130 }))
        expect(overdrawn).toBeInstanceOf(Overdrawn)
        expect(overdrawn).toMatchObject({ _tag: "Overdrawn", balance: -30 })
      }))

    it.scopedLive("a Schema.Void reply round-trips", () =>
      Effect.gen(function*() {
        const { first } = yield* setup(open)
        expect(yield* first.call(Sleep, { ms: 0 })).toBeUndefined()
        // The server and client keep going after it.
        expect(yield* first.call(Add, { a: 1, b: 2 })).toBe(3)
      }))

    // A reply is committed as its handler returns, so its client can be woken while the server
    // goes on with the next request, not after the whole burst (asserted on the reply ring's
    // leading sequence as each handler starts, not on time).
    it.scopedLive("each reply is committed before the server runs the next request's handler", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const rpc = yield* RpcLayers.make.pipe(Effect.provideService(Rings, rings))
        const { replies, requests } = layout(65536)
        const inspector = yield* rings.inspect(replies)
        const seen: Array<number> = []
        yield* rpc.serve({ replies, requests }, [
          handle(Add, ({ a, b }) => Effect.sync(() => seen.push(inspector.writer().sequence)).pipe(Effect.as(a + b)))
        ])
        const client = yield* rpc.client({ client: 0, requests: requests[0]!.ring, replies })
        const results = yield* Effect.all([
          client.call(Add, { a: 1, b: 1 }),
          client.call(Add, { a: 2, b: 2 }),
          client.call(Add, { a: 3, b: 3 })
        ], {
          concurrency: "unbounded"
        })
        expect(results).toEqual([2, 4, 6])
        expect(seen).toHaveLength(3)
        expect(seen[1]).toBeGreaterThan(seen[0]!)
        expect(seen[2]).toBeGreaterThan(seen[1]!)
      }))

    // Handlers run in the wake's callback when they complete at once; one that suspends goes on in
    // a fiber of its own, and its client's ring is not read on until it has replied.
    it.scopedLive("a handler that suspends is answered when it resumes; its client's later request waits behind it, other clients' do not", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const rpc = yield* RpcLayers.make.pipe(Effect.provideService(Rings, rings))
        const { replies, requests } = layout(65536)
        const gate = yield* Deferred.make<void>()
        yield* rpc.serve({ replies, requests }, [
          handle(Add, ({ a, b }) => Effect.succeed(a + b)),
          handle(Wait, ({ name }) => Effect.as(Deferred.await(gate), `opened ${name}`))
        ])
        const [first, second] = yield* Effect.forEach([0, 1], (client) =>
          rpc.client({ client, requests: requests[client]!.ring, replies }))
        const firstRequests = yield* rings.inspect(requests[0]!.ring)
        const before = firstRequests.writer().sequence
        const order: Array<string> = []
        const waiting = yield* Effect.fork(Effect.tap(first!.call(Wait, { name: "gate" }), () =>
          order.push("wait")))
        const behind = yield* Effect.fork(Effect.tap(first!.call(Add, { a: 1, b: 1 }), () => order.push("behind")))
        // Both of the first client's requests are on its ring before the second client calls.
        while (firstRequests.writer().sequence - before < 2 * 32) yield* Effect.sleep("1 millis")
        expect(yield* second!.call(Add, { a: 2, b: 2 })).toBe(4)
        expect(Option.isNone(yield* Fiber.poll(behind))).toBe(true)
        yield* Deferred.succeed(gate, undefined)
        expect(yield* Fiber.join(waiting)).toBe("opened gate")
        expect(yield* Fiber.join(behind)).toBe(2)
        expect(order).toEqual(["wait", "behind"])
      }))

    // A release answers every participant with one object, encoded once; an object a handler
    // changes and returns again later is encoded again.
    it.scopedLive("a handler returning the same object after changing it replies with its new value", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const rpc = yield* RpcLayers.make.pipe(Effect.provideService(Rings, rings))
        const { replies, requests } = layout(65536)
        const shared = new Date("2024-01-01T00:00:00Z")
        yield* rpc.serve({ replies, requests }, [
          handle(Later, ({ days }) => Effect.sync(() => (shared.setTime(shared.getTime() + days * 86_400_000), shared)))
        ])
        const client = yield* rpc.client({ client: 0, requests: requests[0]!.ring, replies })
        expect(yield* client.call(Later, { at: new Date(0), days: 1 })).toEqual(new Date("2024-01-02T00:00:00Z"))
        expect(yield* client.call(Later, { at: new Date(0), days: 1 })).toEqual(new Date("2024-01-03T00:00:00Z"))
      }))

    // Requests read in one wake are served in one synchronous run: an object changed between
    // two of them is still encoded again for the second (only values marked `sharedReply` are
    // encoded once).
    it.scopedLive("a handler returning the same object after changing it, to requests served in one wake, replies with each new value", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const rpc = yield* RpcLayers.make.pipe(Effect.provideService(Rings, rings))
        const { replies, requests } = layout(65536)
        const shared = new Date("2024-01-01T00:00:00Z")
        const served: Array<number> = []
        const inspector = yield* rings.inspect(replies)
        yield* rpc.serve({ replies, requests }, [
          handle(Later, ({ days }) =>
            Effect.sync(() => {
              served.push(inspector.writer().sequence)
              shared.setTime(shared.getTime() + days * 86_400_000)
              return shared
            }))
        ])
        const client = yield* rpc.client({ client: 0, requests: requests[0]!.ring, replies })
        const dates = yield* Effect.all([
          client.call(Later, { at: new Date(0), days: 1 }),
          client.call(Later, { at: new Date(0), days: 2 })
        ], {
          concurrency: "unbounded"
        })
        expect(dates.map((d) => d.toISOString()).sort()).toEqual([
          "2024-01-02T00:00:00.000Z",
          "2024-01-04T00:00:00.000Z"
        ])
        // Both reached the handler. Sent together, they are read in one wake (the case a per-run
        // encoding cache got wrong: the second reply carried the first value).
        expect(served).toHaveLength(2)
      }))

    // A handler that suspends runs in a fiber of its own, which the request ring's reader joins
    // once the wake's callback hands it over. Here the reader is told to stop before it can: the
    // server's scope starts closing in the same step as the request is committed.
    it.scopedLive("a handler suspended when its server's scope closes is interrupted, even before the reader joined it", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const rpc = yield* RpcLayers.make.pipe(Effect.provideService(Rings, rings))
        const { replies, requests } = layout(65536)
        const started = yield* Deferred.make<void>()
        const interrupted = yield* Deferred.make<void>()
        const serverScope = yield* Scope.make()
        yield* rpc.serve({ replies, requests }, [
          handle(Add, ({ a, b }) => Effect.succeed(a + b)),
          handle(Sleep, () =>
            Effect.zipRight(Deferred.succeed(started, undefined), Effect.never).pipe(
              Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
            ))
        ]).pipe(Scope.extend(serverScope))
        // Client 3: its request ring's reader is the first the server's scope stops.
        const client = yield* rpc.client({ client: 3, requests: requests[3]!.ring, replies })
        // The server reads client 3's ring by now.
        expect(yield* client.call(Add, { a: 1, b: 2 })).toBe(3)
        const runFork = Runtime.runFork(yield* Effect.runtime<never>())
        const closing = yield* Effect.sync(() => {
          runFork(client.call(Sleep, { ms: 0 }, { timeoutMs: 60_000 }), { immediate: true })
          return runFork(Scope.close(serverScope, Exit.void), { immediate: true })
        })
        yield* Fiber.join(closing)
        expect(yield* Deferred.isDone(started)).toBe(true)
        expect(yield* Deferred.isDone(interrupted)).toBe(true)
      }))

    // The wait's own bound (60 s) outlasts the test: only the abort can end it.
    it.scopedLive("aborting a call's signal ends its wait with RpcAbandoned; the client keeps working", () =>
      Effect.gen(function*() {
        const { first, waiting: held } = yield* setup(open)
        const controller = new AbortController()
        const waiting = yield* Effect.fork(
          first.call(Wait, { name: "never" }, { timeoutMs: 60_000, signal: controller.signal })
        )
        // Aborted once the server holds the call (the signal aborted before the call is another case, below).
        yield* until(() => held.has("never"), 10_000, () => "the server to hold the call", 1)
        controller.abort("epoch 2")
        expect(yield* Effect.flip(Fiber.join(waiting))).toMatchObject({
          _tag: "RpcAbandoned",
          method: "Wait",
          reason: "epoch 2"
        })
        // An already aborted signal fails at once; other calls are unaffected.
        expect(yield* Effect.flip(first.call(Wait, { name: "late" }, { signal: controller.signal }))).toMatchObject({
          _tag: "RpcAbandoned"
        })
        expect(yield* first.call(Add, { a: 1, b: 2 }, { signal: new AbortController().signal })).toBe(3)
      }))

    // The request ring is full while the server is held in a suspended handler: a call that has
    // to wait for room still ends at its own bound or abort, and is never sent afterwards.
    it.scopedLive("a call waiting for room in its request ring ends at its bound or abort, and is never sent late", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const rpc = yield* RpcLayers.make.pipe(Effect.provideService(Rings, rings))
        const { replies, requests } = layout(65536)
        const gate = yield* Deferred.make<void>()
        const served: Array<string> = []
        yield* rpc.serve({ replies, requests }, [
          handle(Wait, ({ name }) =>
            name === "hold"
              ? Effect.as(Deferred.await(gate), name)
              : Effect.sync(() => (served.push(name.slice(0, 8)), name.slice(0, 8))))
        ])
        const client = yield* rpc.client({ client: 0, requests: requests[0]!.ring, replies })
        const ring = yield* rings.inspect(requests[0]!.ring)
        const held = yield* Effect.fork(client.call(Wait, { name: "hold" }, { timeoutMs: 600_000 }))
        // 2 KB requests, more than the 16 KiB request ring holds behind the held one.
        const fillers = yield* Effect.forEach(
          Array.from({ length: 12 }, (_, i) => `filler${String(i).padStart(2, "0")}`.padEnd(2000, "x")),
          (name) => Effect.fork(client.call(Wait, { name }, { timeoutMs: 600_000 })),
          { concurrency: "unbounded" }
        )
        while (ring.writer().sequence < 7 * 2000) {
          yield* Effect.sleep("1 millis")
        }
        // Its bound is far shorter than the writer's own 10 s wait for room: it must end at its own.
        // As large as a filler: it cannot fit in what the fillers leave of the ring.
        const timedOut = client.call(Wait, { name: "timedout".padEnd(2000, "x") }, { timeoutMs: 50 })
        expect(yield* Effect.flip(timedOut)).toMatchObject({
          _tag: "RpcTimeout",
          timeoutMs: 50,
          request: "not-sent"
        })
        const controller = new AbortController()
        const aborted = yield* Effect.fork(
          client.call(Wait, { name: "aborted".padEnd(2000, "x") }, { timeoutMs: 600_000, signal: controller.signal })
        )
        // Aborted while it waits for room (the ring is still full), not before it started to.
        yield* parked([aborted])
        controller.abort("head lost")
        expect(yield* Effect.flip(Fiber.join(aborted))).toMatchObject({ _tag: "RpcAbandoned", reason: "head lost" })
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(held)
        expect(yield* Effect.forEach(fillers, Fiber.join)).toHaveLength(12)
        // Requests on one ring are served in order: anything sent before this one was served before it.
        expect(yield* client.call(Wait, { name: "marker" })).toBe("marker")
        expect(served.filter((name) => !name.startsWith("filler"))).toEqual(["marker"])
      }))

    it.scopedLive("concurrent calls from two clients each get their own reply", () =>
      Effect.gen(function*() {
        const { first, second } = yield* setup(open)
        const calls = Array.from(
          { length: 400 },
          (_, i) => ({ client: i % 2 === 0 ? first : second, a: i, b: i * 1000 })
        )
        const results = yield* Effect.forEach(calls, ({ client, a, b }) => client.call(Add, { a, b }), {
          concurrency: "unbounded"
        })
        expect(results).toEqual(calls.map(({ a, b }) => a + b))
      }))

    it.scopedLive("a deferred reply completes later while the server keeps serving the same client", () =>
      Effect.gen(function*() {
        const { first, second } = yield* setup(open)
        const waiting = yield* Effect.fork(first.call(Wait, { name: "gate" }))
        expect(yield* first.call(Add, { a: 1, b: 1 })).toBe(2)
        expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
        expect(yield* second.call(Release, { name: "gate" })).toBe(1)
        expect(yield* Fiber.join(waiting)).toBe("released gate")
      }))

    // A process that did not run for longer than the stale bound has its reply reader reaped (the
    // coordinator frees it): the reply to a call it was waiting for may go by meanwhile. Attached
    // again, the client sends that call again; the server answers with the reply it kept, without
    // running the request a second time (a second Wait would never be released: a timeout here).
    it.scopedLive(
      "a call whose reply went by while its reader was reaped gets that reply, its request not run again",
      () =>
        Effect.gen(function*() {
          const { first, rings, second, waiting } = yield* setup(open)
          const { replies } = layout(65536)
          const call = yield* Effect.fork(first.call(Wait, { name: "reaped" }, { timeoutMs: 8_000 }))
          yield* Effect.yieldNow().pipe(Effect.repeat({ until: () => waiting.has("reaped") }))
          // The first client's reader is the one attached first.
          const inspector = yield* rings.inspect(replies)
          const reader = inspector.readers().find((r) => r.state === "attached")!
          expect(yield* rings.reap(replies, reader.slot, reader.occurrence)).toBe(true)
          expect(yield* second.call(Release, { name: "reaped" })).toBe(1)
          expect(yield* Fiber.join(call)).toBe("released reaped")
          expect(waiting.size).toBe(0)
          expect(yield* first.call(Add, { a: 20, b: 22 })).toBe(42)
        }),
      20_000
    )

    it.scopedLive("a call times out with RpcTimeout saying whether the server read its request; one read runs on, its late reply dropped, one unread by its deadline never runs", () =>
      Effect.gen(function*() {
        const { first, requests, rings, waiting } = yield* setup(open)
        // Read at once, then its handler outlasts the call's bound: the server is not told (docs/control-plane/rpc.md).
        const timeout = yield* Effect.flip(first.call(Wait, { name: "read" }, { timeoutMs: 30 }))
        expect(timeout).toMatchObject({ _tag: "RpcTimeout", method: "Wait", timeoutMs: 30, request: "read" })
        expect(timeout.message).toContain("may have run")
        expect(waiting.has("read")).toBe(true)
        // Behind a handler that suspends, the next request is not read until it ends, past this one's deadline.
        const ring = yield* rings.inspect(requests[0]!.ring)
        const sentBefore = ring.writer().sequence
        const sleeping = yield* Effect.fork(first.call(Sleep, { ms: 300 }, { timeoutMs: 5_000 }))
        yield* until(() => ring.writer().sequence > sentBefore, 5_000, () => "the Sleep request was never written")
        const unread = yield* Effect.flip(first.call(Wait, { name: "unread" }, { timeoutMs: 30 }))
        expect(unread).toMatchObject({ _tag: "RpcTimeout", request: "unread" })
        expect(unread.message).toContain("never runs")
        yield* Fiber.join(sleeping)
        // Requests on one ring are served in order: answered, this one means the server read past it, and did not run it.
        expect(yield* first.call(Add, { a: 3, b: 4 })).toBe(7)
        expect(waiting.has("unread")).toBe(false)
        // The one read before its deadline runs on; its late reply finds nobody and the client goes on.
        yield* waiting.get("read")!.succeed("late")
        expect(yield* first.call(Add, { a: 1, b: 1 })).toBe(2)
      }))

    it.scopedLive("a call given a caller's deadline ends there, before its own longer bound; one whose deadline passed is never sent", () =>
      Effect.gen(function*() {
        const { first, requests, rings, waiting } = yield* setup(open)
        const bounded = yield* Effect.flip(
          first.call(Wait, { name: "bounded" }, { timeoutMs: 60_000, deadlineMs: Date.now() + 50 })
        )
        expect(bounded).toMatchObject({ _tag: "RpcTimeout", method: "Wait", request: "read" })
        expect((bounded as { readonly timeoutMs: number }).timeoutMs).toBeLessThanOrEqual(50)
        yield* waiting.get("bounded")!.succeed("late")
        const ring = yield* rings.inspect(requests[0]!.ring)
        const sentBefore = ring.writer().sequence
        const passed = yield* Effect.flip(first.call(Add, { a: 1, b: 2 }, { deadlineMs: Date.now() - 1 }))
        expect(passed).toMatchObject({ _tag: "RpcTimeout", request: "not-sent" })
        expect(ring.writer().sequence).toBe(sentBefore)
        expect(yield* first.call(Add, { a: 1, b: 2 }, { deadlineMs: Date.now() + 5_000 })).toBe(3)
      }))

    // A client's calls share one timer, armed for the earliest deadline: a call with a shorter
    // bound than those already waiting must move it (else it would wait for theirs).
    it.scopedLive("calls waiting together each end at their own bound: a shorter one after a longer one, an interrupted one stops listening", () =>
      Effect.gen(function*() {
        const { first, waiting } = yield* setup(open)
        const long = yield* Effect.fork(first.call(Wait, { name: "long" }, { timeoutMs: 60_000 }))
        const dropped = yield* Effect.fork(first.call(Wait, { name: "dropped" }, { timeoutMs: 60_000 }))
        yield* Effect.repeat(Effect.sync(() => waiting.size), {
          until: (n) => n >= 2,
          schedule: Schedule.spaced("2 millis")
        })
        expect(yield* Effect.flip(first.call(Wait, { name: "short" }, { timeoutMs: 40 }))).toMatchObject({
          _tag: "RpcTimeout",
          timeoutMs: 40
        })
        expect(long.unsafePoll()).toBeNull() // still waiting for its reply
        yield* Fiber.interrupt(dropped)
        yield* waiting.get("dropped")!.succeed("late") // its reply finds nobody listening
        yield* waiting.get("long")!.succeed("released long")
        expect(yield* Fiber.join(long)).toBe("released long")
        expect(yield* first.call(Add, { a: 1, b: 2 })).toBe(3)
      }))

    it.scopedLive("a payload that fails the server's Schema gets RpcInvalidPayload and the server keeps serving", () =>
      Effect.gen(function*() {
        const { first, second } = yield* setup(open)
        const invalid = yield* Effect.flip(first.call(AddWithStrings, { a: "two" }))
        expect(invalid).toMatchObject({ _tag: "RpcInvalidPayload", method: "Add" })
        // The first field that is wrong and how, in one line: no Schema tree.
        expect(invalid.message).toBe("rpc Add #1: invalid request: a: Expected number, actual \"two\"")
        expect(yield* Effect.flip(first.call(Unknown, {}))).toMatchObject({
          _tag: "RpcUnknownMethod",
          method: "NoSuchMethod"
        })
        expect(yield* Effect.flip(first.call(Boom, {}))).toMatchObject({ _tag: "RpcHandlerDefect", method: "Boom" })
        expect(yield* first.call(Add, { a: 5, b: 6 })).toBe(11)
        expect(yield* second.call(Add, { a: 7, b: 8 })).toBe(15)
      }))

    it.scopedLive("garbage frames on a request ring are dropped; the server keeps serving", () =>
      Effect.gen(function*() {
        const { rings, first, requests } = yield* setup(open)
        const raw = yield* rings.writer(requests[3]!.ring)
        yield* raw.writeAll([
          new Uint8Array([1, 2, 3]),
          new Uint8Array(64).fill(0xff),
          Uint8Array.from([1, 0, 200, 0, 3, 0, 0, 0, 1, 0, 0, 0])
        ])
        expect(yield* first.call(Add, { a: 1, b: 2 })).toBe(3)
      }))

    it.scopedLive("notices reach every client, or only the one addressed, through the reply ring's single writer", () =>
      Effect.gen(function*() {
        const { server, first, second } = yield* setup(open)
        const toFirst = yield* first.notices(Announcement)
        const toSecond = yield* second.notices(Announcement)
        const firstTwo = yield* Effect.fork(Stream.runCollect(Stream.take(toFirst, 2)))
        const secondOne = yield* Effect.fork(Stream.runCollect(Stream.take(toSecond, 1)))
        const watermark = yield* server.notify(Announcement, { text: "all" })
        expect(watermark).toBeGreaterThan(0)
        expect(yield* server.notify(Announcement, { text: "first only" }, first.client)).toBeGreaterThan(watermark)
        expect(Chunk.toReadonlyArray(yield* Fiber.join(firstTwo))).toEqual([{ text: "all" }, { text: "first only" }])
        expect(Chunk.toReadonlyArray(yield* Fiber.join(secondOne))).toEqual([{ text: "all" }])
      }))
  })

for (const [label, open] of ringLayers) contract(label, open)

describe("Rpc reply ring wake-ups", () => {
  // A barrier release: a notice, then one reply per participant, each committed at once.
  it("a notice wakes, a macrotask later, only the readers no reply woke since it: each reader is woken once", async () => {
    const commits: Array<ReadonlyArray<number> | undefined> = []
    const wakes: Array<ReadonlyArray<number> | undefined> = []
    const writer = {
      address: { id: 1, offset: 0, dataBytes: 1024, readerSlots: 5 },
      commit: (wake?: ReadonlyArray<number>) => {
        commits.push(wake === undefined ? undefined : [...wake])
        return commits.length
      },
      wake: (slots?: ReadonlyArray<number>) => void wakes.push(slots === undefined ? undefined : [...slots])
    } as unknown as RingWriter
    const list = RpcLayers.wakeList(writer)
    list.add(-1)
    list.commit()
    for (const slot of [1, 3]) {
      list.add(slot)
      list.commit()
    }
    expect(commits).toEqual([[], [1], [3]])
    expect(wakes).toEqual([])
    await new Promise((resolve) => setImmediate(resolve))
    expect(wakes).toEqual([[0, 2, 4]])
    // A second notice counts only the wakes after it.
    list.add(2)
    list.commit()
    list.add(-1)
    list.commit()
    list.add(4)
    list.commit()
    await new Promise((resolve) => setImmediate(resolve))
    expect(wakes).toEqual([[0, 2, 4], [0, 1, 2, 3]])
    // Cancelled with its writer's scope: a due wake never reaches a ring that may be unmapped by then.
    list.add(-1)
    list.commit()
    list.cancel()
    await new Promise((resolve) => setImmediate(resolve))
    expect(wakes).toHaveLength(2)
  })
})

describe("Rpc server on a corrupt request ring", () => {
  // Read again, a corrupt ring fails the same way for good: the server reads on from its head
  // instead, and tells the break once, however long it runs. The TestClock moves time; nothing is timed.
  it.scoped("tells the break once, with where it read on, and never tries the damage again", () => {
    const warnings: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      if (logLevel._tag === "Warning") warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
    })
    return Effect.gen(function*() {
      const { rings } = yield* openRegionRings()()
      const rpc = yield* RpcLayers.make.pipe(Effect.provideService(Rings, rings))
      const { replies, requests } = layout(65536)
      // Client 1's request ring, written here by hand so a frame can be corrupted before its commit.
      const writer = yield* rings.writer(requests[1]!.ring)
      yield* rpc.serve({ replies, requests }, [handle(Add, ({ a, b }) => Effect.succeed(a + b))])
      const at = writer.tryReserve(16)
      new DataView(writer.bytes.buffer, writer.bytes.byteOffset).setUint32(at - 4, 0xdeadbeef, true)
      writer.commit()
      const step = Effect.zipRight(TestClock.adjust("1 second"), TestServices.provideLive(Effect.sleep("2 millis")))
      while (warnings.length === 0) yield* step
      for (let i = 0; i < 130; i++) yield* step
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toMatch(
        /^rpc: client 1: ring \d+ is corrupt at position 0: frame header does not belong to this position; read on from position 24, the requests before it not read$/
      )
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  })
})

describe("Rpc client on a corrupt reply ring", () => {
  // Read again, a corrupt reply ring fails the same way for good: the client reads on from its head.
  it.scopedLive("a reply lost in the damage comes again: its call is sent again and answered with the reply the server kept; a call still waiting at a second break fails RpcRepliesLost; onRepliesLost is told (never onReattach), and later calls are answered", () =>
    Effect.gen(function*() {
      const { region, rings } = yield* openRegionRings()()
      const rpc = yield* RpcLayers.make.pipe(Effect.provideService(Rings, rings))
      const { replies, requests } = layout(65536)
      const waiting = new Map<string, DeferredReply<string, never>>()
      const server = yield* rpc.serve({ replies, requests }, handlers(waiting))
      const told: Array<string> = []
      const client = yield* rpc.client({
        client: 0,
        requests: requests[0]!.ring,
        replies,
        timeoutMs: 30_000,
        onReattach: Effect.sync(() => told.push("reattach")),
        onRepliesLost: (corrupt) => Effect.sync(() => told.push(corrupt.message))
      })
      const held = yield* Effect.fork(client.call(Wait, { name: "held" }))
      const twice = yield* Effect.fork(Effect.flip(client.call(Wait, { name: "twice" })))
      yield* until(
        () => waiting.has("held") && waiting.has("twice"),
        10_000,
        () => "the waiting calls read by the server"
      )
      const reply = waiting.get("held")!
      // The reply committed and damaged in one step: the client's wake comes after it, through the loop.
      const at = yield* Effect.sync(() => {
        const head = Atomics.load(region!.u32, replies.offset / 4)
        Effect.runSync(reply.succeed("answered"))
        const data = replies.offset + 64 * (1 + replies.readerSlots)
        region!.u32[(data + (head % replies.dataBytes)) / 4 + 1]! ^= 1
        return head
      })
      // At once, not at its 30 s bound, with the reply the server kept: had it run the call again,
      // the handler's new deferred reply would never be given.
      expect(yield* Fiber.join(held).pipe(Effect.timeout("5 seconds"))).toBe("answered")
      expect(yield* client.call(Add, { a: 1, b: 2 })).toBe(3)
      // A second break: the call sent again at the first, still waiting, is not sent a second time.
      const again = yield* Effect.sync(() => {
        const head = Atomics.load(region!.u32, replies.offset / 4)
        server.notifyNow(Announcement, { text: "lost" }, client.client)
        const data = replies.offset + 64 * (1 + replies.readerSlots)
        region!.u32[(data + (head % replies.dataBytes)) / 4 + 1]! ^= 1
        return head
      })
      const failed = yield* Fiber.join(twice).pipe(Effect.timeout("5 seconds"))
      expect(failed).toMatchObject({ _tag: "RpcRepliesLost", method: "Wait" })
      expect(failed.message).toContain(`ring ${replies.id} is corrupt at position ${again}`)
      expect(yield* client.call(Add, { a: 2, b: 2 })).toBe(4)
      expect(told).toEqual(
        [at, again].map((position) =>
          `ring ${replies.id} is corrupt at position ${position}: frame header does not belong to this position`
        )
      )
    }))
})
