/**
 * The @effect/rpc protocol over cxlog's rings (src/layers/ipc/EffectRpc.ts), over the live
 * Services layer (a region mapped by the addon, this process as the directory's writer) and the
 * in-memory fake: an `RpcGroup` served and called by name in this process.
 */
import { RpcSerialization } from "@effect/rpc"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Effect, Exit, Fiber, Schedule, Scope, Stream } from "effect"
import { EffectRpcLayers } from "../../src/effect-rpc.js"
import * as ServicesMemory from "../../src/layers/ipc/ServicesMemory.js"
import { type FrameServer, Services } from "../../src/services/ipc/Services.js"
import { liveServices } from "../fixtures/channel-region.js"
import { type BankState, connectBank, serveBank } from "../fixtures/effect-rpc-group.js"
import { bankHandlers as rpcBankHandlers } from "../fixtures/service-methods.js"
import { innerScope } from "../helpers/InnerScope.js"
import { uniqueRegion } from "../helpers/Processes.js"

type Needs = Services | RpcSerialization.RpcSerialization | Scope.Scope
type Run = <A, E>(program: Effect.Effect<A, E, Needs>) => Effect.Effect<A, E | unknown, Scope.Scope>

const withJson = <A, E>(program: Effect.Effect<A, E, Needs>) =>
  Effect.provide(Effect.scoped(program), RpcSerialization.layerJson)
const live: Run = (program) =>
  Effect.flatMap(
    uniqueRegion("effect-rpc"),
    (region) => Effect.provide(withJson(program), liveServices({ region, bell: 0, writesDirectory: true }))
  )
const memory: Run = (program) => Effect.provide(withJson(program), ServicesMemory.layerMemory())

const bank = (): BankState => ({ value: 100, hangsInterrupted: 0, linesEnded: 0 })

/** Waits (bounded) until `condition` holds. */
const eventually = (condition: () => boolean) =>
  Effect.suspend(() => (condition() ? Effect.void : Effect.fail("not yet"))).pipe(
    Effect.retry({ schedule: Schedule.spaced(10), times: 1_000 })
  )

const contract = (label: string, run: Run) =>
  describe(`@effect/rpc over rings: ${label}`, () => {
    it.scopedLive("an RpcGroup served by name is called by name: replies, typed failures, Schemas, streams, concurrency", () =>
      run(Effect.gen(function*() {
        const state = bank()
        yield* serveBank("bank", state)
        const client = yield* connectBank("bank")
        expect(yield* client.Add({ a: 2, b: 3 })).toBe(5)
        expect(yield* client.Withdraw({ amount: 30 })).toBe(70)
        expect(yield* Effect.flip(client.Withdraw({ amount: 500 }))).toMatchObject({ _tag: "Overdrawn", balance: 70 })
        // The payload's Schema refuses it on the client's side: nothing reaches the handler.
        expect(Exit.isFailure(yield* Effect.exit(client.Withdraw({ amount: -1 })))).toBe(true)
        expect(state.value).toBe(70)
        // A streaming RPC: every element, in order, with @effect/rpc's acks over the rings.
        expect(Chunk.toArray(yield* Stream.runCollect(client.Count({ to: 1_000 })))).toEqual(
          Array.from({ length: 1_000 }, (_, i) => i + 1)
        )
        const sums = yield* Effect.all(
          Array.from({ length: 200 }, (_, i) => client.Add({ a: i, b: 1 })),
          { concurrency: "unbounded" }
        )
        expect(sums).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
        expect((yield* (yield* Services).list).map((s) => s.name)).toEqual(["bank"])
      })))

    it.scopedLive("a stopped server ends waiting calls with RpcClientError (ServiceServerDied), calls fail at once until a new server serves", () =>
      run(Effect.gen(function*() {
        const first = yield* serveBank("bank", bank())
        const client = yield* connectBank("bank")
        const waiting = yield* Effect.fork(client.Hang())
        const streaming = yield* Effect.fork(Stream.runDrain(client.Count({ to: 1_000_000_000 })))
        // Both requests reached the server before it stops.
        expect(yield* client.Add({ a: 1, b: 1 })).toBe(2)
        yield* first.stop
        for (const fiber of [waiting, streaming]) {
          const ended = yield* Effect.flip(Fiber.join(fiber))
          expect(ended).toMatchObject({ _tag: "RpcClientError", reason: "Protocol" })
          expect(ended.cause).toMatchObject({ _tag: "ServiceServerDied", name: "bank" })
        }
        expect((yield* Effect.flip(client.Add({ a: 1, b: 1 })))._tag).toBe("RpcClientError")
        // A new server takes the service over; the connected client's calls go to it.
        yield* serveBank("bank", { value: 5, hangsInterrupted: 0, linesEnded: 0 })
        const answered = yield* client.Withdraw({ amount: 1 }).pipe(
          Effect.retry({ while: (e) => e._tag === "RpcClientError", schedule: Schedule.spaced(10), times: 500 })
        )
        expect(answered).toBe(4)
      })))

    it.scopedLive("a client that disconnects has its running requests interrupted on the server; its slot is taken again", () =>
      run(Effect.gen(function*() {
        const state = bank()
        yield* serveBank("bank", state, { callerSlots: 1 })
        const scope = yield* innerScope
        const first = yield* Scope.extend(connectBank("bank"), scope)
        yield* Effect.fork(first.Hang())
        expect(yield* first.Add({ a: 1, b: 2 })).toBe(3)
        expect(yield* Effect.flip(connectBank("bank"))).toMatchObject({ _tag: "ServiceCallersBusy", callerSlots: 1 })
        yield* Scope.close(scope, Exit.void)
        yield* eventually(() => state.hangsInterrupted === 1)
        const second = yield* connectBank("bank")
        expect(yield* second.Add({ a: 20, b: 22 })).toBe(42)
      })))

    it.scopedLive("malformed frames are typed: an undecodable request is answered with a defect, an undecodable reply is RpcClientError", () =>
      run(Effect.gen(function*() {
        const services = yield* Services
        yield* serveBank("bank", bank())
        const replies: Array<string> = []
        const raw = yield* services.connectFrames("bank", {
          onFrame: (frame) => Effect.sync(() => void replies.push(new TextDecoder().decode(frame))),
          onBroken: () => Effect.void
        })
        yield* raw.send("{ not json")
        yield* eventually(() => replies.length === 1)
        expect(JSON.parse(replies[0]!)).toMatchObject({ _tag: "Defect" })
        // A server that answers every frame with bytes no serialization reads.
        const garbled: { server?: FrameServer } = {}
        garbled.server = yield* services.serveFrames("garbled", {
          onFrame: (from) =>
            garbled.server === undefined
              ? Effect.void
              : Effect.orDie(garbled.server.send(from, new Uint8Array([0xff, 0x00, 0x7b]))),
          onLeft: () => Effect.void
        })
        const client = yield* connectBank("garbled")
        const ended = yield* Effect.flip(client.Add({ a: 1, b: 1 }))
        expect(ended).toMatchObject({ _tag: "RpcClientError", reason: "Protocol" })
        expect(ended.message).toContain("did not decode")
      })))

    it.scopedLive("a reply or a stream chunk larger than a frame ends its call with a defect naming its size and the limit", () =>
      run(Effect.gen(function*() {
        const state = bank()
        yield* serveBank("bank", state)
        const client = yield* connectBank("bank")
        const tooLarge = /a (\d+)-byte frame exceeds the (\d+)-byte limit/
        const defectOf = <A, E>(exit: Exit.Exit<A, E>) => {
          expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
          const defect = Cause.squash((exit as Exit.Failure<A, E>).cause) as Error
          expect(defect.name).toBe("ServiceFrameNotSent")
          const [, bytes, limit] = tooLarge.exec(defect.message) ?? []
          expect(Number(bytes)).toBeGreaterThan(Number(limit))
          return defect
        }
        // Bounded here only so that a call left waiting fails the test rather than hanging it.
        const reply = defectOf(yield* Effect.exit(client.Pad({ bytes: 20_000 }).pipe(Effect.timeout("5 seconds"))))
        expect(reply.message).toContain("the reply of request")
        const received: Array<string> = []
        const stream = yield* Effect.exit(
          Stream.runForEach(client.Lines({ bytes: 20_000 }), (line) => Effect.sync(() => void received.push(line)))
            .pipe(
              Effect.timeout("5 seconds")
            )
        )
        expect(defectOf(stream).message).toContain("a stream chunk of request")
        expect(received).toEqual(["first"])
        // The stream's handler does not wait for an ack of the chunk that never went.
        yield* eventually(() => state.linesEnded === 1)
        expect(yield* client.Pad({ bytes: 10 })).toBe("x".repeat(10))
        expect(Chunk.toArray(yield* Stream.runCollect(client.Lines({ bytes: 3 })))).toEqual(["first", "xxx", "last"])
      })))

    it.scopedLive("a service of cxlog Rpc methods and an @effect/rpc service do not read each other's frames", () =>
      run(Effect.gen(function*() {
        const services = yield* Services
        yield* services.serve("rpc-bank", rpcBankHandlers({ value: 1 }))
        expect(yield* Effect.flip(connectBank("rpc-bank"))).toMatchObject({ _tag: "ServiceUnavailable" })
        yield* serveBank("bank", bank())
        const refused = yield* Effect.flip(services.connect("bank"))
        expect(refused).toMatchObject({ _tag: "ServiceUnavailable" })
        expect(refused.message).toContain("@effect/rpc")
        expect(yield* Effect.flip(EffectRpcLayers.makeProtocolServer("rpc-bank"))).toMatchObject({
          _tag: "ServiceUnavailable"
        })
      })))
  })

contract("live", live)
contract("memory", memory)
