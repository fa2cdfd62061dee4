/**
 * The loopback TCP bound, the reference `cxlog bench` reports against: a child `cxlog`
 * process streams bytes to a bare Node child over 127.0.0.1 in fixed-size writes.
 */
import { Data, Effect } from "effect"
import { type ChildProcess, fork, spawn } from "node:child_process"
import { connect } from "node:net"
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

/** How long each child may take to start and connect (a CLI start-up on a loaded machine takes seconds). */
const CONNECT_TIMEOUT_MS = 30_000
/** How long the stream may stall (no byte received) before the bench fails rather than hang. */
const STALL_TIMEOUT_MS = 10_000
/** How often the bounds are checked, and the receiver reports its count: no timer is touched per chunk received. */
const WATCH_MS = 500

/**
 * The receiving side: a bare Node process, with nothing of cxlog loaded. Received in the bench's own
 * process, the stream's buffers made V8 collect that process's heap — the whole CLI's — over and
 * over, and the reference ran slower the larger the CLI grew (docs/performance.md, "The loopback
 * reference"). It reports over IPC: its port, the connection, the first byte, its count every
 * WATCH_MS, and at the last byte the seconds and its CPU since the first.
 */
const RECEIVER_SOURCE = `
const { createServer } = require("node:net")
const total = Number(process.argv[1])
const watchMs = Number(process.argv[2])
let bytes = 0
const server = createServer((socket) => {
  server.close()
  process.send({ connected: true })
  let started = 0
  let cpuFrom
  const report = setInterval(() => process.send({ bytes }), watchMs)
  socket.on("data", (chunk) => {
    if (bytes === 0) {
      started = performance.now()
      cpuFrom = process.cpuUsage()
      process.send({ started: true })
    }
    bytes += chunk.length
    if (bytes >= total) {
      const seconds = (performance.now() - started) / 1000
      const cpu = process.cpuUsage(cpuFrom)
      clearInterval(report)
      socket.destroy()
      process.send({ done: { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 } }, () => process.exit(0))
    }
  })
  socket.on("error", () => {})
  socket.on("close", () => {
    if (bytes < total) process.send({ closedAfter: bytes }, () => process.exit(1))
  })
})
server.listen(0, "127.0.0.1", () => process.send({ port: server.address().port }))
process.on("disconnect", () => process.exit(0))
`

/** What the receiver reports (RECEIVER_SOURCE). */
type ReceiverReport =
  | { readonly port: number }
  | { readonly connected: true }
  | { readonly started: true }
  | { readonly bytes: number }
  | { readonly done: { readonly seconds: number; readonly cpuSeconds: number } }
  | { readonly closedAfter: number }

/**
 * Measures the loopback stream of `totalBytes` in `chunkBytes` writes: a child `cxlog` sends, a
 * bare Node child receives; neither is this process.
 */
export const measureLoopback = (totalBytes: number, chunkBytes: number): Effect.Effect<LoopbackFigures, Error> =>
  Effect.scoped(Effect.gen(function*() {
    const receiver = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["-e", RECEIVER_SOURCE, `${totalBytes}`, `${WATCH_MS}`], {
          stdio: ["ignore", "ignore", "inherit", "ipc"],
          // Plain Node: none of the bench's environment (its NODE_OPTIONS, preloads) reaches the reference.
          env: {}
        })
      ),
      (child) => Effect.sync(() => void child.kill("SIGKILL"))
    )
    let sender: ChildProcess | undefined
    yield* Effect.addFinalizer(() => Effect.sync(() => void sender?.kill("SIGKILL")))
    /** The sender's CPU seconds now (/proc, 10 ms ticks), if known. */
    const senderCpu = () => (sender?.pid === undefined ? undefined : processCpuSeconds(sender.pid))
    return yield* Effect.async<LoopbackFigures, Error>((resume) => {
      let settled = false
      let connected = false
      let bytes = 0
      let watchedBytes = 0
      let quietMs = 0
      let senderFrom: number | undefined
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
      const startSender = (port: number) => {
        sender = fork(cliEntry(), ["loopback-send", `${port}`, `${totalBytes}`, `${chunkBytes}`], { stdio: "ignore" })
        sender.once("error", (error) => fail("the loopback sender's connection", error.message))
        sender.once("exit", (code, signal) => {
          if (!connected) {
            fail("the loopback sender's connection", `the sender exited (${code ?? signal}) before connecting`)
          }
        })
      }
      receiver.on("message", (report: ReceiverReport) => {
        if ("port" in report) return startSender(report.port)
        if ("connected" in report) return void (connected = true, quietMs = 0)
        // Both processes' CPU from the first byte on: the sender's start-up is not part of the stream.
        if ("started" in report) return void (senderFrom = senderCpu())
        if ("bytes" in report) return void (bytes = report.bytes)
        if ("closedAfter" in report) {
          return fail(
            "the loopback sender's bytes",
            `the connection closed after ${report.closedAfter} of ${totalBytes} bytes`
          )
        }
        const senderTo = senderCpu()
        const { cpuSeconds, seconds } = report.done
        settle(Effect.succeed({
          mBps: totalBytes / 1e6 / seconds,
          cpuSecondsPerGiB: senderFrom === undefined || senderTo === undefined
            ? undefined
            : (senderTo - senderFrom + cpuSeconds) / (totalBytes / 2 ** 30)
        }))
      })
      receiver.once("error", (error) => fail("the loopback receiver", error.message))
      // Once its IPC channel is closed too: its last report has been read by then.
      receiver.once(
        "close",
        (code, signal) => fail("the loopback receiver", `it exited (${code ?? signal}) before the last byte`)
      )
      return Effect.sync(() => clearInterval(watch))
    })
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
