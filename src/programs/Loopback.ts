/**
 * The loopback TCP bound, the reference `cxlog bench` reports against: a child `cxlog`
 * process streams bytes to this one over 127.0.0.1 in fixed-size writes.
 */
import { Effect } from "effect"
import { type ChildProcess, fork } from "node:child_process"
import { connect, createServer } from "node:net"
import { cliEntry } from "../PackageRoot.js"
import { processCpuSeconds } from "./Cluster.js"

export interface LoopbackFigures {
  /** MB/s (10^6 bytes) from the first byte received to the last. */
  readonly mBps: number
  /**
   * CPU seconds (user + system) the sender and the receiver process spent per GiB over the
   * same span — what moving the bytes through loopback TCP costs in Node, the reference for
   * the cluster's CPU per GiB. Undefined where /proc is unavailable.
   */
  readonly cpuSecondsPerGiB: number | undefined
}

/** CPU seconds of this process (all threads). */
const ownCpuSeconds = (): number => {
  const { system, user } = process.cpuUsage()
  return (system + user) / 1e6
}

/** Measures the loopback stream of `totalBytes` in `chunkBytes` writes. */
export const measureLoopback = (totalBytes: number, chunkBytes: number): Effect.Effect<LoopbackFigures, Error> =>
  Effect.scoped(Effect.gen(function*() {
    const server = createServer()
    yield* Effect.addFinalizer(() => Effect.sync(() => server.close()))
    let sender: ChildProcess | undefined
    /** The sender's CPU seconds now (/proc, 10 ms ticks), if known. */
    const senderCpu = () => (sender?.pid === undefined ? undefined : processCpuSeconds(sender.pid))
    const received = Effect.async<LoopbackFigures, Error>((resume) => {
      server.once("connection", (socket) => {
        let bytes = 0
        let started = 0
        // Both processes' CPU from the first byte on: the sender's start-up is not part of the stream.
        let ownFrom = 0
        let senderFrom: number | undefined
        socket.on("data", (chunk: Buffer) => {
          if (bytes === 0) {
            started = performance.now()
            ownFrom = ownCpuSeconds()
            senderFrom = senderCpu()
          }
          bytes += chunk.length
          if (bytes >= totalBytes) {
            const seconds = (performance.now() - started) / 1000
            const senderTo = senderCpu()
            const cpu = senderFrom === undefined || senderTo === undefined ? undefined : senderTo - senderFrom + ownCpuSeconds() - ownFrom
            socket.destroy()
            resume(Effect.succeed({
              mBps: totalBytes / 1e6 / seconds,
              cpuSecondsPerGiB: cpu === undefined ? undefined : cpu / (totalBytes / 2 ** 30)
            }))
          }
        })
        socket.on("error", (error) => resume(Effect.fail(error)))
      })
    })
    const port = yield* Effect.async<number>((resume) => {
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as { port: number }).port)))
    })
    sender = yield* Effect.acquireRelease(
      Effect.sync(() => fork(cliEntry(), ["loopback-send", `${port}`, `${totalBytes}`, `${chunkBytes}`], { stdio: "ignore" })),
      (child) => Effect.sync(() => void child.kill("SIGKILL"))
    )
    return yield* received
  }))

/** MB/s (10^6 bytes) from the first byte received to the last. */
export const measureLoopbackMBps = (totalBytes: number, chunkBytes: number): Effect.Effect<number, Error> =>
  Effect.map(measureLoopback(totalBytes, chunkBytes), (figures) => figures.mBps)

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
