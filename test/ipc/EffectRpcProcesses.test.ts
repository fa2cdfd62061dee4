/**
 * @effect/rpc over cxlog's rings between processes, by name: a `cxlog head` writes the directory;
 * the server and the callers are member processes, none of them named in advance. The server is
 * SIGKILLed mid-call: its caller gets a typed error (RpcClientError, its cause ServiceServerDied),
 * not a hang, and the next server takes the service over. Processes and the region are removed
 * when a test ends, pass or fail.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { ipcHead } from "../fixtures/ipc-member.js"
import { said, spawnFixture, uniqueRegion } from "../helpers/Processes.js"

const member = (region: string, role: object) =>
  spawnFixture("effect-rpc-member", [JSON.stringify({ region, ...role })])

describe("@effect/rpc over rings across processes", () => {
  it.scopedLive(
    "callers in several processes (calls and a stream); a second server refused; the server SIGKILLed mid-call is a typed error; a new server serves",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("effect-rpc-procs")
        yield* ipcHead(region)
        const server = yield* member(region, { role: "serve" })
        const { pid } = yield* said<{ pid: number }>(server, "ready")
        const second = yield* member(region, { role: "serve" })
        expect(yield* said(second, "refused")).toEqual({ refused: "ServiceTaken", pid })
        const calls = 1_000
        const callers = yield* Effect.forEach([1, 2], () => member(region, { role: "call", calls }))
        for (const caller of callers) expect(yield* said(caller, "ready")).toEqual({ ready: true, server: pid })
        for (const caller of callers) expect(yield* said(caller, "done")).toEqual({ done: true, calls, wrong: 0 })
        // A call the server never answers is waiting when it is SIGKILLed: it ends typed, not by a bound of its own (it has none).
        const hanging = yield* member(region, { role: "hang" })
        expect(yield* said(hanging, "ready")).toEqual({ ready: true, server: pid })
        server.process.kill("SIGKILL")
        yield* Deferred.await(server.exited)
        expect(yield* said(hanging, "ended")).toEqual({ ended: "RpcClientError", cause: "ServiceServerDied" })
        // The next server takes the dead one's service over; a new caller is served by it.
        const restarted = yield* member(region, { role: "serve" })
        const { pid: newPid } = yield* said<{ pid: number }>(restarted, "ready")
        const caller = yield* member(region, { role: "call", calls: 10 })
        expect(yield* said(caller, "ready")).toEqual({ ready: true, server: newPid })
        expect(yield* said(caller, "done")).toEqual({ done: true, calls: 10, wrong: 0 })
      }),
    180_000
  )

  it.scopedLive(
    "a frame caller SIGSTOPped while the reply ring fills has its reader freed, the other calls go on, and run again it is told ServiceRepliesLost",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("effect-rpc-stalled")
        yield* ipcHead(region)
        const server = yield* member(region, { role: "serve" })
        yield* said(server, "ready")
        const listener = yield* member(region, { role: "listen" })
        yield* said(listener, "ready")
        listener.process.kill("SIGSTOP")
        // Runs before the fixture's own finalizer kills it: nothing is left stopped.
        yield* Effect.addFinalizer(() => Effect.sync(() => listener.process.kill("SIGCONT")))
        // Far more replies than the reply ring holds: they wait for the stopped reader, until it is freed.
        const calls = 20_000
        const caller = yield* member(region, { role: "call", calls })
        yield* said(caller, "ready")
        expect(yield* said(caller, "done")).toEqual({ done: true, calls, wrong: 0 })
        listener.process.kill("SIGCONT")
        expect(yield* said(listener, "broken")).toEqual({ broken: "ServiceRepliesLost" })
      }),
    180_000
  )
})
