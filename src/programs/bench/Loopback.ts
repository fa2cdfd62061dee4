/**
 * The loopback TCP bound, the reference `cxlog bench` reports against: a child `cxlog`
 * process streams bytes to this one over 127.0.0.1 in fixed-size writes.
 */
import { Data, Effect } from "effect"
import { type ChildProcess, fork } from "node:child_process"
import { connect, createServer } from "node:net"
import { cliEntry } from "../ProgramSettings.js"
import { processCpuSeconds } from "../run/Cluster.js"

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

/** A bench's peer process (the loopback sender, the echo server) failed, or a wait on it passed its bound. */
export class BenchPeerFailed
  extends Data.TaggedError("BenchPeerFailed")<{ readonly waitedFor: string; readonly detail: string }>
{
  override get message() {
    return `waiting for ${this.waitedFor}: ${this.detail}`
  }
}

/** How long the sender may take to start and connect (a CLI start-up on a loaded machine takes seconds). */
const CONNECT_TIMEOUT_MS = 30_000
/** How long the stream may stall (no byte received) before the bench fails rather than hang. */
const STALL_TIMEOUT_MS = 10_000
/** How often the bounds are checked: no timer is touched per chunk received. */
const WATCH_MS = 500

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
    /** Fails once the sender exits before connecting, the stream ends short or stalls, or no connection comes in time. */
    const received = Effect.async<LoopbackFigures, Error>((resume) => {
      let settled = false
      let connected = false
      let bytes = 0
      let watchedBytes = 0
      let quietMs = 0
      const settle = (outcome: Effect.Effect<LoopbackFigures, Error>) => {
        if (settled) return
        settled = true
        clearInterval(watch)
        resume(outcome)
      }
      const fail = (waitedFor: string, detail: string) =>
        settle(Effect.fail(new BenchPeerFailed({ waitedFor, detail })))
      const watch = setInterval(() => {
        quietMs = bytes === watchedBytes ? quietMs + WATCH_MS : 0
        watchedBytes = bytes
        if (!connected && quietMs >= CONNECT_TIMEOUT_MS) {
          fail("the loopback sender's connection", `none within ${CONNECT_TIMEOUT_MS} ms`)
        }
        if (connected && quietMs >= STALL_TIMEOUT_MS) {
          fail(
            "the loopback sender's bytes",
            `${bytes} of ${totalBytes} received, then none for ${STALL_TIMEOUT_MS} ms`
          )
        }
      }, WATCH_MS)
      const exited = (code: number | null, signal: NodeJS.Signals | null) => {
        if (!connected) {
          fail("the loopback sender's connection", `the sender exited (${code ?? signal}) before connecting`)
        }
      }
      if (sender!.exitCode !== null || sender!.signalCode !== null) exited(sender!.exitCode, sender!.signalCode)
      else sender!.once("exit", exited)
      server.once("connection", (socket) => {
        connected = true
        quietMs = 0
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
            const cpu = senderFrom === undefined || senderTo === undefined
              ? undefined
              : senderTo - senderFrom + ownCpuSeconds() - ownFrom
            settle(Effect.succeed({
              mBps: totalBytes / 1e6 / seconds,
              cpuSecondsPerGiB: cpu === undefined ? undefined : cpu / (totalBytes / 2 ** 30)
            }))
            socket.destroy()
          }
        })
        socket.on("error", (error) => settle(Effect.fail(error)))
        socket.on(
          "close",
          () => fail("the loopback sender's bytes", `the connection closed after ${bytes} of ${totalBytes} bytes`)
        )
      })
      return Effect.sync(() => clearInterval(watch))
    })
    const port = yield* Effect.async<number>((resume) => {
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as { port: number }).port)))
    })
    sender = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(cliEntry(), ["loopback-send", `${port}`, `${totalBytes}`, `${chunkBytes}`], { stdio: "ignore" })
      ),
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
