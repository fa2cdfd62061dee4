/**
 * A bench's peer server is up only once it is the process listening on its port: a port taken by
 * another process between its pick and the server's bind is answered by that process, and a bench
 * that took the answer as the server's would measure, or wait on, the wrong server.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { createServer, type Server } from "node:net"
import { accepts, freePort, startPeerServer } from "../../src/programs/bench/peers/PeerServer.js"
import { listensOn } from "../../src/programs/bench/peers/PortOwner.js"

/** A stand-in server: binds the port it is given on 127.0.0.1, and exits 1 when it cannot. */
const bindArgs = (port: number) => [
  "-e",
  "require('node:net').createServer().listen(Number(process.argv[1]), '127.0.0.1')",
  String(port)
]

/** A listener of this process on a free port, closed with the scope. */
const heldPort = Effect.acquireRelease(
  Effect.async<{ readonly server: Server; readonly port: number }>((resume) => {
    const server = createServer()
    server.listen(
      0,
      "127.0.0.1",
      () => resume(Effect.succeed({ server, port: (server.address() as { port: number }).port }))
    )
  }),
  ({ server }) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
)

/** A picker handing out `ports` in turn, then free ports. */
const picks = (ports: ReadonlyArray<number>) => {
  let next = 0
  return Effect.suspend(() => (next < ports.length ? Effect.succeed(ports[next++]!) : freePort))
}

describe("startPeerServer", () => {
  it.scoped("tells this process's listener from another's", () =>
    Effect.gen(function*() {
      const { port } = yield* heldPort
      expect(listensOn(process.pid, port)).toBe(true)
      expect(listensOn(process.ppid, port)).toBe(false)
      expect(listensOn(process.pid, yield* freePort)).toBe(false)
    }))

  it.scopedLive("is not up on a fixed port another process listens on", () =>
    Effect.gen(function*() {
      const { port } = yield* heldPort
      const failed = yield* Effect.flip(startPeerServer("stand-in", process.execPath, bindArgs, port))
      expect(failed).toMatchObject({ _tag: "PeerFailed", peer: "stand-in", portTaken: port })
      expect(failed.detail).toContain(`could not listen on port ${port}: another process listens on it`)
      // What the stand-in said last (Node names its version under an uncaught error).
      expect(failed.detail).toContain(`Node.js ${process.version}`)
    }))

  it.scopedLive("takes another port when the one it picked is taken before the server binds it", () =>
    Effect.gen(function*() {
      const taken = yield* heldPort
      const server = yield* startPeerServer("stand-in", process.execPath, bindArgs, undefined, picks([taken.port]))
      expect(server.port).not.toBe(taken.port)
      expect(listensOn(server.pid, server.port)).toBe(true)
      expect(yield* Effect.promise(() => accepts(server.port))).toBe(true)
    }))

  it.scopedLive("gives up after a few ports, each taken", () =>
    Effect.gen(function*() {
      const held = [yield* heldPort, yield* heldPort, yield* heldPort]
      const failed = yield* Effect.flip(
        startPeerServer("stand-in", process.execPath, bindArgs, undefined, picks(held.map((h) => h.port)))
      )
      expect(failed.portTaken).toBe(held[2]!.port)
      expect(failed.detail).toContain(
        `could not listen on port ${held[2]!.port}: another process listens on it (the last of 3 ports tried)`
      )
    }))
})
