/**
 * Services between processes, by name: a `cxlog head` writes the directory; the server and the
 * callers are member processes (and this process, a member too), none of them named in advance.
 * The server is SIGKILLed mid-call: its callers get a typed error, not a hang, and the next
 * server takes the service over. Processes and the region are removed when a test ends, pass or fail.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Schedule } from "effect"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import * as ServicesLayers from "../../src/layers/ipc/Services.js"
import { isPidStopped } from "../../src/layers/region/ProcessInfo.js"
import { Services } from "../../src/services/ipc/Services.js"
import { ipcHead, memberBase } from "../fixtures/ipc-member.js"
import { Add, WhoServes } from "../fixtures/service-methods.js"
import { said, spawnFixture, tempDir, uniqueRegion } from "../helpers/Processes.js"

const member = (region: string, role: object) => spawnFixture("service-member", [JSON.stringify({ region, ...role })])

describe("Services across processes", () => {
  it.scopedLive(
    "concurrent callers from several processes; a second server refused; the server SIGKILLed mid-call is a typed error; a new server serves again",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("service-procs")
        yield* ipcHead(region)
        const server = yield* member(region, { role: "serve" })
        const { pid } = yield* said<{ pid: number }>(server, "ready")
        // A second server for the name is refused, naming the live one.
        const second = yield* member(region, { role: "serve" })
        expect(yield* said(second, "refused")).toEqual({ refused: "ServiceTaken", pid })
        // Three caller processes connected at once, each with its own caller slot; they call once all are.
        const calls = 2_000
        const goFile = join(yield* tempDir("cxlog-service-procs-"), "go")
        const callers = yield* Effect.forEach([1, 2, 3], () => member(region, { role: "call", calls, goFile }))
        const slots = yield* Effect.forEach(callers, (c) => said<{ caller: number }>(c, "ready"))
        expect(new Set(slots.map((s) => s.caller)).size).toBe(3)
        writeFileSync(goFile, "")
        for (const caller of callers) expect(yield* said(caller, "done")).toEqual({ done: true, calls, wrong: 0 })
        // This process calls by name too.
        const services = Context.get(
          yield* Layer.build(ServicesLayers.layer.pipe(Layer.provide(memberBase(region)))),
          Services
        )
        const client = yield* services.connect("bank")
        expect(yield* client.call(WhoServes, {})).toBe(pid)
        // A call the server never answers is waiting when it is SIGKILLed: it ends typed, long before its 60 s bound.
        const hanging = yield* member(region, { role: "hang" })
        yield* said(hanging, "ready")
        expect((yield* services.list).find((s) => s.name === "bank")?.serverPid).toBe(pid)
        server.process.kill("SIGKILL")
        yield* Deferred.await(server.exited)
        expect(yield* said(hanging, "ended")).toEqual({ ended: "ServiceServerDied", pid })
        // The next server takes the dead one's service over; a caller connected before goes on with it.
        const restarted = yield* member(region, { role: "serve" })
        const { pid: newPid } = yield* said<{ pid: number }>(restarted, "ready")
        const answer = yield* client.call(WhoServes, {}).pipe(
          Effect.retry({ while: (e) => e._tag === "ServiceServerDied", times: 1_000, schedule: Schedule.spaced(10) })
        )
        expect(answer).toBe(newPid)
        expect(yield* client.call(Add, { a: 20, b: 22 })).toBe(42)
      }),
    180_000
  )

  it.scopedLive(
    "a SIGSTOPped caller does not stall the others: once the reply ring is full its reader is freed and their calls go on",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("service-stalled")
        yield* ipcHead(region)
        const server = yield* member(region, { role: "serve" })
        yield* said(server, "ready")
        // A caller waiting for a reply that never comes: its reader is attached to the reply ring.
        const stalled = yield* member(region, { role: "hang" })
        yield* said(stalled, "ready")
        stalled.process.kill("SIGSTOP")
        // Runs before the fixture's own finalizer kills it: nothing is left stopped.
        yield* Effect.addFinalizer(() => Effect.sync(() => stalled.process.kill("SIGCONT")))
        const services = Context.get(
          yield* Layer.build(ServicesLayers.layer.pipe(Layer.provide(memberBase(region)))),
          Services
        )
        const client = yield* services.connect("bank")
        // Far more replies than the ring holds; each call's bound outlasts the server's wait for room (10 s).
        for (let i = 0; i < 20_000; i++) {
          expect(yield* client.call(Add, { a: i, b: 1 }, { timeoutMs: 30_000 })).toBe(i + 1)
        }
      }),
    180_000
  )

  it.scopedLive(
    "a SIGSTOPped server: a call ends by its bound (RpcTimeout), it still serves the name; continued, each call gets its own reply, never a late one",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("service-frozen")
        yield* ipcHead(region)
        const server = yield* member(region, { role: "serve" })
        const { pid } = yield* said<{ pid: number }>(server, "ready")
        const services = Context.get(
          yield* Layer.build(ServicesLayers.layer.pipe(Layer.provide(memberBase(region)))),
          Services
        )
        const client = yield* services.connect("bank")
        expect(yield* client.call(Add, { a: 0, b: 0 })).toBe(0)
        server.process.kill("SIGSTOP")
        // Runs before the fixture's own finalizer kills it: nothing is left stopped.
        yield* Effect.addFinalizer(() => Effect.sync(() => server.process.kill("SIGCONT")))
        yield* Effect.repeat(Effect.sync(() => isPidStopped(pid)), {
          until: (stopped) => stopped,
          schedule: Schedule.spaced(10)
        }).pipe(Effect.timeout("10 seconds"))
        // Stopped is not dead: the call waits out its own bound, and the name is still its.
        const late = yield* Effect.flip(client.call(Add, { a: 1, b: 1 }, { timeoutMs: 300 }))
        expect(late).toMatchObject({ _tag: "RpcTimeout", timeoutMs: 300 })
        expect((yield* services.list).find((s) => s.name === "bank")?.serverPid).toBe(pid)
        expect(yield* Effect.flip(services.serve("bank", []))).toMatchObject({ _tag: "ServiceTaken", pid })
        const waiting = yield* Effect.fork(client.call(Add, { a: 2, b: 2 }, { timeoutMs: 30_000 }))
        server.process.kill("SIGCONT")
        // The timed-out request runs now (its reply 2 comes late): it settles neither this call nor the next.
        expect(yield* Fiber.join(waiting)).toBe(4)
        expect(yield* client.call(Add, { a: 3, b: 3 })).toBe(6)
      }),
    60_000
  )
})
