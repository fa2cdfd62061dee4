/**
 * The loopback TCP bound, the reference `cxlog bench` reports against: a child `cxlog`
 * process streams bytes to this one over 127.0.0.1 in fixed-size writes.
 */
import { Effect } from "effect"
import { fork } from "node:child_process"
import { connect, createServer } from "node:net"
import { cliEntry } from "../PackageRoot.js"

/** MB/s (10^6 bytes) from the first byte received to the last. */
export const measureLoopbackMBps = (totalBytes: number, chunkBytes: number): Effect.Effect<number, Error> =>
  Effect.scoped(Effect.gen(function*() {
    const server = createServer()
    yield* Effect.addFinalizer(() => Effect.sync(() => server.close()))
    const received = Effect.async<number, Error>((resume) => {
      server.once("connection", (socket) => {
        let bytes = 0
        let started = 0
        socket.on("data", (chunk: Buffer) => {
          if (bytes === 0) started = performance.now()
          bytes += chunk.length
          if (bytes >= totalBytes) {
            socket.destroy()
            resume(Effect.succeed(totalBytes / 1e6 / ((performance.now() - started) / 1000)))
          }
        })
        socket.on("error", (error) => resume(Effect.fail(error)))
      })
    })
    const port = yield* Effect.async<number>((resume) => {
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as { port: number }).port)))
    })
    yield* Effect.acquireRelease(
      Effect.sync(() => fork(cliEntry(), ["loopback-send", `${port}`, `${totalBytes}`, `${chunkBytes}`], { stdio: "ignore" })),
      (child) => Effect.sync(() => void child.kill("SIGKILL"))
    )
    return yield* received
  }))

/** The sending side (`cxlog loopback-send PORT BYTES CHUNK`): writes as fast as the socket drains. */
export const loopbackSend = (port: number, totalBytes: number, chunkBytes: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const chunk = Buffer.alloc(chunkBytes, 7)
    const socket = connect({ host: "127.0.0.1", port, noDelay: true }, () => {
      let sent = 0
      const pump = () => {
        while (sent < totalBytes) {
          const n = Math.min(chunkBytes, totalBytes - sent)
          sent += n
          if (!socket.write(n === chunkBytes ? chunk : chunk.subarray(0, n))) return void socket.once("drain", pump)
        }
        socket.end()
      }
      pump()
    })
    socket.on("error", () => resume(Effect.void))
    socket.on("close", () => resume(Effect.void))
  })
