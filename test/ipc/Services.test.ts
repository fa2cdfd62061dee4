/**
 * The Services contract, over the live layer (a region mapped by the addon, this process as the
 * directory's writer) and the in-memory fake: servers and callers in this process.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Exit, Fiber, Layer, Logger, Schedule, Schema, Scope } from "effect"
import { lines, ringLineViews } from "../../src/layers/control/RingLines.js"
import { FREE } from "../../src/layers/control/RingSlotStates.js"
import { serviceRings } from "../../src/layers/ipc/ServiceLayout.js"
import * as ServicesMemory from "../../src/layers/ipc/ServicesMemory.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { Entry } from "../../src/layers/region/DirectoryRecords.js"
import { ownStartTag } from "../../src/layers/region/ProcessInfo.js"
import * as Rpc from "../../src/services/control/Rpc.js"
import { type ServiceRequestsBroken, Services } from "../../src/services/ipc/Services.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { channelDirectoryArea, liveServices } from "../fixtures/channel-region.js"
import { Add, bankHandlers, Hang, Later, WhoServes, Withdraw } from "../fixtures/service-methods.js"
import { innerScope } from "../helpers/InnerScope.js"
import { parked } from "../helpers/Parked.js"
import { uniqueRegion } from "../helpers/Processes.js"
import { laterStartTag } from "../helpers/StartTags.js"

type Run = <A, E>(program: Effect.Effect<A, E, Services | Scope.Scope>) => Effect.Effect<A, E | unknown, Scope.Scope>

const live: Run = (program) =>
  Effect.flatMap(
    uniqueRegion("services"),
    (region) => Effect.provide(Effect.scoped(program), liveServices({ region, bell: 0, writesDirectory: true }))
  )
const memory: Run = (program) => Effect.provide(Effect.scoped(program), ServicesMemory.layerMemory())

/** Serves the bank in a scope of its own, which the test closes to stop the server. */
const serveIn = (services: Services["Type"], name: string, balance = { value: 100 }) =>
  Effect.gen(function*() {
    const scope = yield* innerScope
    const served = yield* Scope.extend(services.serve(name, bankHandlers(balance), { callerSlots: 2 }), scope)
    return { served, stop: Scope.close(scope, Exit.void) }
  })

const contract = (label: string, run: Run) =>
  describe(`Services contract: ${label}`, () => {
    it.scopedLive("a service served by name is called by name: replies, typed failures, refused payloads, deferred replies, bounds", () =>
      run(Effect.gen(function*() {
        const services = yield* Services
        const balance = { value: 100 }
        yield* services.serve("bank", bankHandlers(balance))
        expect(yield* services.list).toEqual([{ name: "bank", serverPid: process.pid }])
        const client = yield* services.connect("bank")
        expect(yield* client.call(Add, { a: 2, b: 3 })).toBe(5)
        expect(yield* client.call(Withdraw, { amount: 30 })).toBe(70)
        const overdrawn = yield* Effect.flip(client.call(Withdraw, { amount: 500 }))
        expect(overdrawn).toMatchObject({ _tag: "Overdrawn", balance: 70 })
        expect((yield* Effect.flip(client.call(Withdraw, { amount: -1 })))._tag).toBe("RpcInvalidPayload")
        expect(balance.value).toBe(70)
        // Deferred replies: the later one asked first is answered last; calls do not wait for each other.
        const [slow, fast] = yield* Effect.all([client.call(Later, { ms: 200 }), client.call(Later, { ms: 1 })], {
          concurrency: "unbounded"
        })
        expect([slow, fast]).toEqual(["after 200 ms", "after 1 ms"])
        const timedOut = yield* Effect.flip(client.call(Hang, {}, { timeoutMs: 100 }))
        expect(timedOut).toMatchObject({ _tag: "RpcTimeout", timeoutMs: 100 })
        // A bound that is not a number (a setting read wrong) bounds the call at once, not never.
        expect(yield* Effect.flip(client.call(Hang, {}, { timeoutMs: Number.NaN }))).toMatchObject({
          _tag: "RpcTimeout",
          request: "not-sent"
        })
        // Many concurrent calls, each with its own reply.
        const sums = yield* Effect.all(
          Array.from({ length: 200 }, (_, i) => client.call(Add, { a: i, b: 1 })),
          { concurrency: "unbounded" }
        )
        expect(sums).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
      })))

    it.scopedLive("one server per name: a second is ServiceTaken naming the first; a stopped server's service is served again", () =>
      run(Effect.gen(function*() {
        const services = yield* Services
        const first = yield* serveIn(services, "bank")
        const taken = yield* Effect.flip(services.serve("bank", bankHandlers({ value: 0 })))
        expect(taken).toMatchObject({ _tag: "ServiceTaken", name: "bank", pid: process.pid })
        const client = yield* services.connect("bank")
        const waiting = yield* Effect.fork(client.call(Hang, {}, { timeoutMs: 60_000 }))
        yield* first.stop
        // The call waiting when the server stopped ends typed, long before its bound.
        const ended = yield* Effect.flip(Fiber.join(waiting))
        expect(ended).toMatchObject({ _tag: "ServiceServerDied", method: "hang", sent: true })
        expect(ended.message).toContain("the request may have run")
        // A call made once the caller knows it: not sent, so it never ran.
        const unsent = yield* Effect.flip(client.call(Withdraw, { amount: 1 }))
        expect(unsent).toMatchObject({ _tag: "ServiceServerDied", method: "withdraw", sent: false })
        expect(unsent.message).toContain("the request was not sent")
        expect(yield* services.list).toEqual([{ name: "bank", serverPid: undefined }])
        expect((yield* Effect.flip(services.connect("bank")))._tag).toBe("ServiceNotServed")
        // A new server takes the service over; the connected caller's calls go to it.
        yield* serveIn(services, "bank", { value: 5 })
        // Until the caller's next look at its server (CXLOG_SERVICE_CHECK_MS) its calls fail at once.
        const answered = yield* client.call(Withdraw, { amount: 1 }).pipe(
          Effect.retry({ while: (e) => e._tag === "ServiceServerDied", schedule: Schedule.spaced(10), times: 500 })
        )
        expect(answered).toBe(4)
      })))

    it.scopedLive("callers take slots as they connect: all taken is ServiceCallersBusy, a closed caller's slot is taken again", () =>
      run(Effect.gen(function*() {
        const services = yield* Services
        expect((yield* Effect.flip(services.connect("nobody")))._tag).toBe("ServiceNotFound")
        yield* serveIn(services, "bank")
        const first = yield* services.connect("bank")
        const secondScope = yield* innerScope
        const second = yield* Scope.extend(services.connect("bank"), secondScope)
        expect(new Set([first.caller, second.caller])).toEqual(new Set([0, 1]))
        expect(yield* Effect.flip(services.connect("bank"))).toMatchObject({
          _tag: "ServiceCallersBusy",
          callerSlots: 2
        })
        expect(yield* second.call(WhoServes, {})).toBe(process.pid)
        yield* Scope.close(secondScope, Exit.void)
        const third = yield* services.connect("bank")
        expect(third.caller).toBe(second.caller)
        expect(yield* third.call(Add, { a: 1, b: 1 })).toBe(2)
        expect(yield* first.call(Add, { a: 2, b: 2 })).toBe(4)
      })))

    it.scopedLive("a caller that takes a gone caller's slot gets its own replies, never the replies the gone one's calls still get", () =>
      run(Effect.gen(function*() {
        const services = yield* Services
        yield* serveIn(services, "bank")
        const goneScope = yield* innerScope
        const gone = yield* Scope.extend(services.connect("bank"), goneScope)
        // Its call is answered after it has gone: request ids start over in each caller, so both calls are request 1.
        const calling = yield* Effect.forkIn(gone.call(Later, { ms: 300 }), goneScope)
        // Gone once its call is written and waits for the reply.
        yield* parked([calling])
        yield* Scope.close(goneScope, Exit.void)
        const next = yield* services.connect("bank")
        expect(next.caller).toBe(gone.caller)
        expect(yield* next.call(Later, { ms: 600 })).toBe("after 600 ms")
      })))
  })

const removal = (label: string, run: Run) =>
  describe(`Services removal: ${label}`, () => {
    it.scopedLive(
      "remove: refused while served or called, then its name and room are given back; 100 served and removed in turn fit a directory of fewer",
      () =>
        run(Effect.gen(function*() {
          const services = yield* Services
          expect(yield* Effect.flip(services.remove("nobody"))).toMatchObject({
            _tag: "ServiceNotFound",
            name: "nobody"
          })
          const scope = yield* innerScope
          yield* Scope.extend(services.serve("bank", bankHandlers({ value: 1 }), { callerSlots: 2 }), scope)
          const client = yield* Scope.extend(services.connect("bank"), scope)
          expect(yield* Effect.flip(services.remove("bank"))).toMatchObject({
            _tag: "ServiceInUse",
            name: "bank",
            pids: [process.pid]
          })
          expect(yield* client.call(Add, { a: 1, b: 2 })).toBe(3)
          yield* Scope.close(scope, Exit.void)
          yield* services.remove("bank")
          expect(yield* services.list).toEqual([])
          for (let i = 0; i < 100; i++) {
            yield* Effect.scoped(Effect.gen(function*() {
              yield* services.serve(`churn-${i}`, bankHandlers({ value: 0 }), { callerSlots: 1, ringBytes: 4096 })
              const caller = yield* services.connect(`churn-${i}`)
              expect(yield* caller.call(Add, { a: i, b: 1 })).toBe(i + 1)
            }))
            yield* services.remove(`churn-${i}`)
          }
          expect(yield* services.list).toEqual([])
        })),
      120_000
    )
  })

const sizes = (label: string, run: Run) =>
  describe(`Services' sizes: ${label}`, () => {
    it.scopedLive("a shape one past its bounds (1 to 255 caller slots, rings a multiple of 64 bytes from 4 KiB to 1 GiB) is ServiceUnavailable naming the value; one at them serves", () =>
      run(Effect.gen(function*() {
        const services = yield* Services
        for (
          const [shape, named] of [
            [{ callerSlots: 0 }, "callerSlots 0"],
            [{ callerSlots: 256 }, "callerSlots 256"],
            [{ callerSlots: 1.5 }, "callerSlots 1.5"],
            [{ ringBytes: 4096 - 64 }, "ringBytes 4032"],
            [{ ringBytes: 4096 + 32 }, "ringBytes 4128"],
            [{ ringBytes: 2 ** 30 + 64 }, `ringBytes ${2 ** 30 + 64}`]
          ] as const
        ) {
          const why = yield* Effect.flip(services.serve("bad", bankHandlers({ value: 0 }), shape))
          expect(why).toMatchObject({ _tag: "ServiceUnavailable", name: "bad" })
          expect(why.message).toContain(named)
        }
        expect(yield* services.list).toEqual([])
        const widest = yield* services.serve("widest", bankHandlers({ value: 0 }), {
          callerSlots: 255,
          ringBytes: 4096
        })
        expect(widest.shape).toEqual({ callerSlots: 255, ringBytes: 4096 })
        expect(yield* (yield* services.connect("widest")).call(Add, { a: 1, b: 1 })).toBe(2)
      })))

    it.scopedLive("a request larger than the service's rings admit is ServiceRequestTooLarge naming the service and method; the next call goes on", () =>
      run(Effect.gen(function*() {
        const services = yield* Services
        const Echo = Rpc.method("echo", { payload: Schema.String, success: Schema.String })
        yield* services.serve("echo", [Rpc.handle(Echo, (s) => Effect.succeed(s))], { ringBytes: 4096 })
        const client = yield* services.connect("echo")
        const refused = yield* Effect.flip(client.call(Echo, "x".repeat(5_000)))
        expect(refused).toMatchObject({
          _tag: "ServiceRequestTooLarge",
          name: "echo",
          method: "echo",
          // The payload's 5 002 bytes of JSON, the 4-byte tag, the 12-byte header and the call's 8-byte deadline.
          bytes: 5026
        })
        expect(refused.message).toContain("CXLOG_SERVICE_RING_BYTES")
        expect((refused as { maxFrameBytes: number }).maxFrameBytes).toBeLessThanOrEqual(1024)
        expect(yield* client.call(Echo, "small")).toBe("small")
      })))
  })

/**
 * A caller that looks at its server only every second (CXLOG_SERVICE_CHECK_MS): a server stopped
 * and another serving the name both fall between two looks, so the only sign of the swap is the
 * reply ring's writer occurrence.
 */
const SLOW_LOOKS = Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["CXLOG_SERVICE_CHECK_MS", "1000"]])))
const slowLooks = {
  live: ((program) =>
    Effect.flatMap(
      uniqueRegion("services-swap"),
      (region) =>
        Effect.provide(
          Effect.scoped(program),
          liveServices({ region, bell: 0, writesDirectory: true }).pipe(Layer.provide(SLOW_LOOKS))
        )
    )) as Run,
  memory:
    ((program) =>
      Effect.provide(Effect.scoped(program), ServicesMemory.layerMemory().pipe(Layer.provide(SLOW_LOOKS)))) as Run
}

const swap = (label: string, run: Run) =>
  describe(`Services' server swap: ${label}`, () => {
    it.scopedLive(
      "a call waiting on a server that stopped ends ServiceServerDied at the caller's next look, even when another server already serves the name by then",
      () =>
        run(Effect.gen(function*() {
          const services = yield* Services
          const first = yield* serveIn(services, "bank")
          const client = yield* services.connect("bank")
          const waiting = yield* Effect.fork(Effect.flip(client.call(Hang, {}, { timeoutMs: 60_000 })))
          yield* parked([waiting])
          // Stopped and served again at once: no look of the caller comes in between.
          yield* first.stop
          yield* serveIn(services, "bank", { value: 5 })
          // Within a look or two (1 s each), long before the call's own bound: it does not wait on a server that is gone.
          const ended = yield* Fiber.join(waiting).pipe(Effect.timeout("10 seconds"))
          expect(ended).toMatchObject({ _tag: "ServiceServerDied", method: "hang" })
          // The caller goes on with the new server.
          const answered = yield* client.call(Withdraw, { amount: 1 }).pipe(
            Effect.retry({ while: (e) => e._tag === "ServiceServerDied", schedule: Schedule.spaced(50), times: 100 })
          )
          expect(answered).toBe(4)
        })),
      30_000
    )
  })

describe("Services' servers by pid and start tag", () => {
  it.scopedLive("a reply ring's writer line naming a live pid under another start tag (a dead server's pid reused) is no server: not listed, ServiceNotServed, its callers' waiting calls ServiceServerDied", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("services-reused-pid")
      const services = Context.get(
        yield* Layer.build(liveServices({ region, bell: 0, writesDirectory: true })),
        Services
      )
      const { served } = yield* serveIn(services, "bank")
      const client = yield* services.connect("bank")
      const waiting = yield* Effect.fork(Effect.flip(client.call(Hang, {}, { timeoutMs: 60_000 })))
      yield* parked([waiting])
      // The reply ring's writer line, through a mapping of the region of its own: this process's pid
      // with a later process's start tag, as a server's line reads once the pid went to another process.
      const memory = Context.get(yield* Layer.build(CxlMemoryLayers.layer({ name: region, mode: "attach" })), CxlMemory)
      const { control } = ringLineViews(memory)
      const at = lines(serviceRings(served.entry, served.shape).replies).control
      const own = control.writer(at)
      expect(own).toEqual({ pid: process.pid, start: ownStartTag() })
      expect(own.start).toBeGreaterThan(0)
      expect(control.swapWriter(at, own, process.pid, laterStartTag(own.start))).toBe(true)
      // Put back whatever happens, before the server's scope closes the ring as its writer.
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => control.swapWriter(at, control.writer(at), own.pid, own.start))
      )
      expect(yield* services.list).toEqual([{ name: "bank", serverPid: undefined }])
      expect((yield* Effect.flip(services.connect("bank")))._tag).toBe("ServiceNotServed")
      const ended = yield* Fiber.join(waiting).pipe(Effect.timeout("10 seconds"))
      expect(ended).toMatchObject({ _tag: "ServiceServerDied", method: "hang", pid: process.pid })
      // Its own line again: the server is this process, listed and called.
      expect(control.swapWriter(at, control.writer(at), own.pid, own.start)).toBe(true)
      expect(yield* services.list).toEqual([{ name: "bank", serverPid: process.pid }])
      expect(yield* (yield* services.connect("bank")).call(Add, { a: 1, b: 2 })).toBe(3)
    }))
})

describe("Services' frame callers whose reply reader was reaped", () => {
  it.scopedLive("told ServiceRepliesLost once as the reader attaches again; at the caller's close, while a finalizer of its waits, never again", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("services-frames-reaped")
      const services = Context.get(
        yield* Layer.build(liveServices({ region, bell: 0, writesDirectory: true })),
        Services
      )
      const served = yield* services.serveFrames("frames", { onFrame: () => Effect.void, onLeft: () => Effect.void })
      const broken: Array<string> = []
      const scope = yield* innerScope
      const client = yield* Scope.extend(
        services.connectFrames("frames", {
          onFrame: () => Effect.void,
          onBroken: (error) => Effect.sync(() => broken.push(error._tag))
        }),
        scope
      )
      // A finalizer that waits at the close, as an application's may: the caller's reading runs on meanwhile.
      yield* Scope.addFinalizer(scope, Effect.sleep("1500 millis"))
      // Its reply reader freed, as a server frees a stopped caller's: it attaches again and is told so.
      const memory = Context.get(yield* Layer.build(CxlMemoryLayers.layer({ name: region, mode: "attach" })), CxlMemory)
      const { reader } = ringLineViews(memory)
      const line = lines(serviceRings(served.entry, served.shape).replies).line(client.connection.caller)
      expect(reader.swapState(line, reader.state(line), FREE)).toBe(true)
      yield* Effect.repeat(Effect.sync(() => broken.length), {
        until: (told) => told > 0,
        schedule: Schedule.spaced("20 millis")
      }).pipe(Effect.timeout("10 seconds"))
      yield* Scope.close(scope, Exit.void)
      expect(broken).toEqual(["ServiceRepliesLost"])
    }))
})

describe("Services over a corrupt request ring", () => {
  /** Answered once the test opens its latch: a handler that suspends holds back its caller's later requests. */
  const Gate = Rpc.method("gate", { payload: Schema.Struct({}), success: Schema.Void })

  it.scopedLive("the server tells the break once as ServiceRequestsBroken and reads on; the unread call fails RpcRequestUnread at once, the next is served, and the service is removed and served again", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("services-corrupt-requests")
      const services = Context.get(
        yield* Layer.build(liveServices({ region, bell: 0, writesDirectory: true })),
        Services
      )
      const memory = Context.get(yield* Layer.build(CxlMemoryLayers.layer({ name: region, mode: "attach" })), CxlMemory)
      const [entered, gate] = [yield* Effect.makeLatch(false), yield* Effect.makeLatch(false)]
      const told: Array<ServiceRequestsBroken> = []
      const serverScope = yield* innerScope
      const gated = Rpc.handle(Gate, () => Effect.zipRight(entered.open, gate.await))
      const served = yield* Scope.extend(
        services.serve("bank", [...bankHandlers({ value: 100 }), gated], {
          callerSlots: 2,
          onBroken: (broken) => Effect.sync(() => told.push(broken))
        }),
        serverScope
      )
      const callerScope = yield* innerScope
      const client = yield* Scope.extend(services.connect("bank", { timeoutMs: 30_000 }), callerScope)
      const ring = serviceRings(served.entry, served.shape).requests[client.caller]!
      const held = yield* Effect.fork(client.call(Gate, {}))
      // Read and running: the server reads the next request only once it is done.
      yield* entered.await.pipe(Effect.timeout("10 seconds"))
      // Written while the server's handler holds the ring back, then damaged as a buggy writer could leave it.
      const at = Atomics.load(memory.u32, ring.offset / 4) // the leading sequence's low word: small here
      const unread = yield* Effect.fork(Effect.flip(client.call(Add, { a: 1, b: 2 })))
      yield* parked([unread])
      const data = ring.offset + 64 * (1 + ring.readerSlots)
      memory.u32[(data + (at % ring.dataBytes)) / 4 + 1]! ^= 1
      yield* gate.open
      yield* Fiber.join(held)
      // At once, not at its 30 s bound.
      const failed = yield* Fiber.join(unread).pipe(Effect.timeout("5 seconds"))
      expect(failed).toMatchObject({ _tag: "RpcRequestUnread", method: "add" })
      expect(failed.message).toContain("frame header does not belong to this position")
      expect(told).toHaveLength(1)
      expect(told[0]).toMatchObject({
        _tag: "ServiceRequestsBroken",
        name: "bank",
        caller: client.caller,
        position: at
      })
      expect(told[0]!.message).toContain("were never read (their callers are told), and reading goes on from there")
      // Read on past the damage: the caller's next calls are served, and the break is not told again.
      expect(yield* client.call(Add, { a: 2, b: 3 })).toBe(5)
      expect(yield* client.call(Withdraw, { amount: 30 })).toBe(70)
      expect(told).toHaveLength(1)
      yield* Scope.close(callerScope, Exit.void)
      yield* Scope.close(serverScope, Exit.void)
      yield* services.remove("bank")
      yield* serveIn(services, "bank")
      expect(yield* (yield* services.connect("bank")).call(Add, { a: 1, b: 2 })).toBe(3)
    }))
})

describe("Services over a damaged request ring header", () => {
  it.scopedLive("a caller slot whose request ring's leading sequence is damaged is told once by a serve and skipped by callers; the other slots serve", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("services-damaged-head")
      const services = Context.get(
        yield* Layer.build(liveServices({ region, bell: 0, writesDirectory: true })),
        Services
      )
      const memory = Context.get(yield* Layer.build(CxlMemoryLayers.layer({ name: region, mode: "attach" })), CxlMemory)
      const { served, stop } = yield* serveIn(services, "bank")
      yield* stop
      // Caller slot 0's leading sequence (the f64 of its control line) as no writer leaves it: not a position.
      const ring = serviceRings(served.entry, served.shape).requests[0]!
      memory.f64[(ring.offset + 8) / 8] = Number.NaN
      const told: Array<ServiceRequestsBroken> = []
      const scope = yield* innerScope
      yield* Scope.extend(
        services.serve("bank", bankHandlers({ value: 100 }), {
          callerSlots: 2,
          onBroken: (broken) => Effect.sync(() => told.push(broken))
        }),
        scope
      )
      expect(told).toHaveLength(1)
      expect(told[0]).toMatchObject({ _tag: "ServiceRequestsBroken", name: "bank", caller: 0 })
      expect(told[0]!.resumedAt).toBeUndefined()
      expect(told[0]!.message).toContain("leading sequence is not a position; nothing more is read from it")
      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
      })
      const client = yield* Scope.extend(services.connect("bank"), scope).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      expect(client.caller).toBe(1)
      expect(warnings).toEqual([
        `service "bank": caller slot 0 skipped: ring ${ring.id} is corrupt at position NaN: leading sequence is not a position (Services.remove and a new serve mend it)`
      ])
      expect(yield* client.call(Add, { a: 1, b: 2 })).toBe(3)
      const busy = yield* Effect.flip(services.connect("bank"))
      expect(busy).toMatchObject({ _tag: "ServiceCallersBusy", callerSlots: 2, damaged: [0] })
      expect(told).toHaveLength(1)
      // Removed and served anew, the slot is mended.
      yield* Scope.close(scope, Exit.void)
      yield* services.remove("bank")
      yield* serveIn(services, "bank")
      const mended = yield* services.connect("bank")
      expect(mended.caller).toBe(0)
      expect(yield* mended.call(Add, { a: 2, b: 2 })).toBe(4)
    }))
})

describe("Services over a corrupt ring: frames", () => {
  it.scopedLive("the server tells the break once and drops the connection; its caller is told ServiceRequestsBroken at once, and its next frame is read", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("services-corrupt-frames")
      const services = Context.get(
        yield* Layer.build(liveServices({ region, bell: 0, writesDirectory: true })),
        Services
      )
      const memory = Context.get(yield* Layer.build(CxlMemoryLayers.layer({ name: region, mode: "attach" })), CxlMemory)
      const [entered, gate] = [yield* Effect.makeLatch(false), yield* Effect.makeLatch(false)]
      const read: Array<string> = []
      const events: Array<string> = []
      const served = yield* services.serveFrames("frames", {
        onFrame: (_, frame) => {
          const text = new TextDecoder().decode(frame)
          read.push(text)
          return text === "held" ? Effect.zipRight(entered.open, gate.await) : Effect.void
        },
        onLeft: () => Effect.sync(() => events.push("left")),
        onBroken: (broken) => Effect.sync(() => events.push(broken._tag))
      }, { callerSlots: 2 })
      const callerTold: Array<string> = []
      const client = yield* services.connectFrames("frames", {
        onFrame: () => Effect.void,
        onBroken: (error) => Effect.sync(() => callerTold.push(error.message))
      })
      const ring = serviceRings(served.entry, served.shape).requests[client.connection.caller]!
      yield* client.send("held")
      yield* entered.await.pipe(Effect.timeout("10 seconds"))
      const at = Atomics.load(memory.u32, ring.offset / 4)
      yield* client.send("lost")
      const data = ring.offset + 64 * (1 + ring.readerSlots)
      memory.u32[(data + (at % ring.dataBytes)) / 4 + 1]! ^= 1
      yield* gate.open
      yield* Effect.repeat(Effect.sync(() => callerTold.length), {
        until: (n) => n > 0,
        schedule: Schedule.spaced("10 millis")
      }).pipe(Effect.timeout("5 seconds"))
      expect(callerTold).toHaveLength(1)
      expect(callerTold[0]).toMatch(
        new RegExp(
          `^service "frames": caller slot ${client.connection.caller}'s request ring is corrupt: ring \\d+ is corrupt at position ${at}: frame header does not belong to this position; the requests from position ${at} to \\d+ were never read`
        )
      )
      expect(events).toEqual(["left", "ServiceRequestsBroken"])
      yield* client.send("after")
      yield* Effect.repeat(Effect.sync(() => read), {
        until: (frames) => frames.includes("after"),
        schedule: Schedule.spaced("10 millis")
      }).pipe(Effect.timeout("5 seconds"))
      expect(read).toEqual(["held", "after"])
      expect(events).toEqual(["left", "ServiceRequestsBroken"])
    }))

  it.scopedLive("a frame caller whose reply ring reads corrupt reads past it, told ServiceRepliesLost naming the damage once, and gets the frames sent after", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("services-corrupt-replies")
      const services = Context.get(
        yield* Layer.build(liveServices({ region, bell: 0, writesDirectory: true })),
        Services
      )
      const memory = Context.get(yield* Layer.build(CxlMemoryLayers.layer({ name: region, mode: "attach" })), CxlMemory)
      const [entered, gate] = [yield* Effect.makeLatch(false), yield* Effect.makeLatch(false)]
      const served = yield* services.serveFrames("frames", { onFrame: () => Effect.void, onLeft: () => Effect.void }, {
        callerSlots: 2
      })
      const got: Array<string> = []
      const told: Array<string> = []
      const client = yield* services.connectFrames("frames", {
        onFrame: (frame) => {
          const text = new TextDecoder().decode(frame)
          got.push(text)
          return text === "held" ? Effect.zipRight(entered.open, gate.await) : Effect.void
        },
        onBroken: (error) => Effect.sync(() => told.push(error.message))
      })
      const ring = serviceRings(served.entry, served.shape).replies
      yield* served.send(client.connection, "held")
      yield* entered.await.pipe(Effect.timeout("10 seconds"))
      // Sent while the caller's handler holds its reading back, then damaged.
      const at = Atomics.load(memory.u32, ring.offset / 4)
      yield* served.send(client.connection, "lost")
      const data = ring.offset + 64 * (1 + ring.readerSlots)
      memory.u32[(data + (at % ring.dataBytes)) / 4 + 1]! ^= 1
      yield* gate.open
      yield* Effect.repeat(Effect.sync(() => told.length), {
        until: (n) => n > 0,
        schedule: Schedule.spaced("10 millis")
      }).pipe(Effect.timeout("5 seconds"))
      expect(told).toEqual([
        `service "frames": its reply reader read past a corrupt stretch of the reply ring (ring ${ring.id} is corrupt at position ${at}: frame header does not belong to this position); replies sent meanwhile are lost`
      ])
      yield* served.send(client.connection, "after")
      yield* Effect.repeat(Effect.sync(() => got), {
        until: (frames) => frames.includes("after"),
        schedule: Schedule.spaced("10 millis")
      }).pipe(Effect.timeout("5 seconds"))
      expect(got).toEqual(["held", "after"])
      expect(told).toHaveLength(1)
    }))
})

describe("Services over a damaged directory entry", () => {
  it.scopedLive("a service whose entry does not read as one is ServiceUnavailable saying remove frees its name; removed, the name serves anew", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("services-damaged-entry")
      const services = Context.get(
        yield* Layer.build(liveServices({ region, bell: 0, writesDirectory: true })),
        Services
      )
      const { served, stop } = yield* serveIn(services, "bank")
      yield* stop
      const memory = Context.get(yield* Layer.build(CxlMemoryLayers.layer({ name: region, mode: "attach" })), CxlMemory)
      // Its layout parameter (the entry's first f64) as no build writes it.
      memory.f64[(channelDirectoryArea.entry(served.entry.slot) + Entry.params) / 8] = 7
      const refused = yield* Effect.flip(services.connect("bank"))
      expect(refused).toMatchObject({ _tag: "ServiceUnavailable", name: "bank" })
      expect(refused.message).toContain(
        "its layout is 7, this build reads layout 1 (another build's, or damaged: Services.remove frees its name)"
      )
      yield* services.remove("bank")
      expect(yield* services.list).toEqual([])
      yield* serveIn(services, "bank")
      expect(yield* (yield* services.connect("bank")).call(Add, { a: 1, b: 2 })).toBe(3)
    }))
})

swap("live", slowLooks.live)
swap("memory", slowLooks.memory)

sizes("live", live)
sizes("memory", memory)

removal("live", live)
removal("memory", memory)

contract("live", live)
contract("memory", memory)
