/**
 * The sending side of every transport `cxlog bench --type channel` measures, opened before
 * anything is measured and closed with the scope: the channels' publishers in a run region of
 * the bench's own, the peer process (ChannelBenchPeer.ts) with its Unix socket connection, and
 * the inbox of the peer's messages (its acknowledgements) every measurement waits on.
 */
import { Context, Effect, Layer } from "effect"
import { type ChildProcess, fork } from "node:child_process"
import { rmSync } from "node:fs"
import { createServer, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Channels } from "../../services/ipc/Channels.js"
import { cliEntry } from "../ProgramSettings.js"
import { benchRegion } from "./BenchRegion.js"
import { benchChannels } from "./ChannelBenchRegion.js"
import {
  type FromPeer,
  LATENCY_CHANNEL,
  LatencyValue,
  RAW_CHANNEL,
  RAW_LATENCY_CHANNEL,
  SizedValue,
  TAKE_LATENCY_CHANNEL,
  TYPED_CHANNEL
} from "./ChannelBenchValues.js"
import { BenchPeerFailed } from "./Loopback.js"

/** How long the bench waits for the peer to connect, or for one of its answers. */
export const ACK_TIMEOUT_MS = 10_000

const failed = (waitedFor: string, detail: string) => new BenchPeerFailed({ waitedFor, detail })

/** The peer's messages, each handed to the one waiter it answers (or to the window's acknowledgements). */
const makeInbox = (child: ChildProcess) => {
  const waiters = new Map<string, (message: FromPeer) => void>()
  // A message that came before its waiter was in place (the peer's `ready`, say), kept for it.
  const early = new Map<string, FromPeer>()
  const window = { received: 0, wake: undefined as (() => void) | undefined }
  let lost: string | undefined
  const keyOf = (message: FromPeer) =>
    "ack" in message
      ? `ack:${message.ack}:${message.seq}`
      : "armed" in message
      ? `armed:${message.armed}`
      : "done" in message
      ? `done:${message.done}`
      : "ready" in message
      ? "ready"
      : undefined
  child.on("message", (message: FromPeer) => {
    if ("received" in message) {
      window.received = message.received
      const wake = window.wake
      window.wake = undefined
      wake?.()
      return
    }
    if ("error" in message) lost = message.error
    const key = keyOf(message)
    if (key === undefined) return
    const waiter = waiters.get(key)
    if (waiter === undefined) early.set(key, message)
    else {
      waiters.delete(key)
      waiter(message)
    }
  })
  child.once("exit", (code, signal) => (lost ??= `it exited (${code ?? signal})`))
  /** Runs `trigger` with a waiter for the message `key` names already in place, then waits for that message. */
  const expect = <M extends FromPeer, E>(key: string, timeoutMs: number, trigger: Effect.Effect<unknown, E>) =>
    Effect.suspend(() => {
      let arrived = early.get(key)
      early.delete(key)
      let resumeWith: ((outcome: Effect.Effect<M, BenchPeerFailed>) => void) | undefined
      waiters.set(key, (m) => (resumeWith === undefined ? (arrived = m) : resumeWith(Effect.succeed(m as M))))
      return Effect.zipRight(
        trigger,
        Effect.async<M, BenchPeerFailed>((resume) => {
          if (arrived !== undefined) return resume(Effect.succeed(arrived as M))
          if (lost !== undefined) return resume(Effect.fail(failed(key, lost)))
          resumeWith = resume
        })
      ).pipe(
        Effect.timeoutFail({
          duration: timeoutMs,
          onTimeout: () => failed(key, lost ?? `none within ${timeoutMs} ms`)
        }),
        Effect.ensuring(Effect.sync(() => void waiters.delete(key)))
      )
    })
  return { expect, window }
}

export type Inbox = ReturnType<typeof makeInbox>

/** A Unix domain socket server at `path` for the scope, and the one connection it accepts. */
const unixServer = (path: string) =>
  Effect.gen(function*() {
    rmSync(path, { force: true })
    let accepted: Socket | undefined
    let onAccept: (() => void) | undefined
    const server = createServer((socket) => {
      socket.setNoDelay(true)
      accepted = socket
      onAccept?.()
    })
    yield* Effect.acquireRelease(
      Effect.async<void, Error>((resume) => {
        server.once("error", (error) => resume(Effect.fail(error)))
        server.listen(path, () => resume(Effect.void))
      }),
      () =>
        Effect.sync(() => {
          accepted?.destroy()
          server.close()
          rmSync(path, { force: true })
        })
    )
    return Effect.async<Socket>((resume) => {
      if (accepted !== undefined) return resume(Effect.succeed(accepted))
      onAccept = () => resume(Effect.succeed(accepted!))
    }).pipe(
      Effect.timeoutFail({
        duration: ACK_TIMEOUT_MS,
        onTimeout: () => failed("the peer's Unix socket connection", `none within ${ACK_TIMEOUT_MS} ms`)
      })
    )
  })

/**
 * Everything the bench sends through, in a run region of its own for the scope: the channels'
 * publishers, the peer process (process.send) and its Unix socket connection, and the peer's
 * messages.
 */
export const openSenders = Effect.gen(function*() {
  const region = yield* benchRegion()
  const channels = Context.get(yield* Layer.build(benchChannels(region, "bench")), Channels)
  // One writer and one reader each: the bench writes, its peer reads.
  const one = { writerSlots: 1, readerSlots: 1 }
  const latencyChannel = yield* channels.open(LATENCY_CHANNEL, LatencyValue, { ...one, ringBytes: 64 << 10 })
  const takeLatencyChannel = yield* channels.open(TAKE_LATENCY_CHANNEL, LatencyValue, {
    ...one,
    ringBytes: 64 << 10
  })
  const typedChannel = yield* channels.open(TYPED_CHANNEL, SizedValue, { ...one, ringBytes: 1 << 20 })
  const rawLatencyChannel = yield* channels.openRaw(RAW_LATENCY_CHANNEL, { ...one, ringBytes: 64 << 10 })
  const rawChannel = yield* channels.openRaw(RAW_CHANNEL, { ...one, ringBytes: 1 << 20 })
  const socketPath = join(tmpdir(), `cxlog-bench-channel-${process.pid}.sock`)
  const accepted = yield* unixServer(socketPath)
  const child = yield* Effect.acquireRelease(
    Effect.sync(() =>
      fork(cliEntry(), ["channel-bench-peer", JSON.stringify({ region, socket: socketPath })], {
        stdio: ["ignore", "ignore", "inherit", "ipc"],
        serialization: "advanced"
      })
    ),
    (c) => Effect.sync(() => void c.kill("SIGKILL"))
  )
  const inbox = makeInbox(child)
  yield* inbox.expect("ready", 60_000, Effect.void)
  const socket = yield* accepted
  const latencyPublisher = yield* latencyChannel.publisher
  const takeLatencyPublisher = yield* takeLatencyChannel.publisher
  const typedPublisher = yield* typedChannel.publisher
  const rawPublisher = yield* rawChannel.publisher
  const rawLatencyPublisher = yield* rawLatencyChannel.publisher
  return {
    child,
    inbox,
    socket,
    latencyPublisher,
    takeLatencyPublisher,
    typedPublisher,
    rawPublisher,
    rawLatencyPublisher
  }
})

export type Senders = Effect.Effect.Success<typeof openSenders>
