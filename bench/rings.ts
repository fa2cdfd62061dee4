/**
 * bench rings: one-way throughput from one process to another for 64 B, 1 KiB and 64 KiB
 * frames: a cxlog ring (writer here, reader in a child process), `process.send` to a child
 * (child_process IPC, advanced serialization) and a `worker_threads` MessagePort, in the same
 * run on the same payloads. Every receiver touches each payload's first and last byte.
 * `ratio` = ring frames/s over process.send messages/s for 64 B frames.
 * Flags: --scale=N multiplies the frame counts (default 1).
 */
import { Effect, Layer } from "effect"
import { type ChildProcess, fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import { MessageChannel, type MessagePort, parentPort, Worker, workerData } from "node:worker_threads"
import * as CxlMemoryLayers from "../src/layers/CxlMemory.js"
import * as DoorbellLayers from "../src/layers/Doorbell.js"
import * as RingsLayers from "../src/layers/Rings.js"
import { type RingAddress, ringFootprint, Rings } from "../src/services/Rings.js"
import { emit, table } from "./Report.js"

const RING: RingAddress = { id: 1, offset: 8192, dataBytes: 8 << 20, readerSlots: 1 }
const PARENT_BELL = 4096
const CHILD_BELL = 4160
/** A ring writer commits after this many frames or this many bytes, whichever comes first. */
const COMMIT_EVERY = 32
const COMMIT_BYTES = 64 << 10
/** Messages a sender may have unacknowledged on the IPC and MessagePort paths. */
const WINDOW = 1024
const ACK_EVERY = 256

interface Case {
  readonly size: number
  readonly ring: number
  readonly ipc: number
  readonly port: number
}

const cases = (scale: number): ReadonlyArray<Case> =>
  [
    { size: 64, ring: 4_000_000, ipc: 200_000, port: 400_000 },
    { size: 1024, ring: 1_000_000, ipc: 100_000, port: 200_000 },
    { size: 65536, ring: 40_000, ipc: 10_000, port: 20_000 }
  ].map((c) => ({ size: c.size, ring: Math.ceil(c.ring * scale), ipc: Math.ceil(c.ipc * scale), port: Math.ceil(c.port * scale) }))

interface Received {
  frames: number
  bytes: number
  touched: number
}

const touch = (received: Received, bytes: Uint8Array, offset: number, length: number) => {
  received.frames++
  received.bytes += length
  received.touched += bytes[offset]! + bytes[offset + length - 1]!
}

const payloadOf = (size: number) => Uint8Array.from({ length: size }, (_, i) => (i * 7 + 1) & 0xff)

const nextMessage = <A>(child: ChildProcess | MessagePort) =>
  Effect.async<A>((resume) => {
    child.once("message", (message: A) => resume(Effect.succeed(message)))
  })

/** The ring: the writer here, one reader in a child process, one case after another. */
const ringRun = (name: string, all: ReadonlyArray<Case>) =>
  Effect.gen(function*() {
    const rings = yield* Rings
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => fork(fileURLToPath(import.meta.url), ["--ring-reader", name], { stdio: ["ignore", "inherit", "inherit", "ipc"] })),
      (c) => Effect.sync(() => void c.kill("SIGKILL"))
    )
    yield* nextMessage(child)
    const seconds: Array<number> = []
    for (const { size, ring: count } of all) {
      const payload = payloadOf(size)
      const elapsed = yield* Effect.scoped(Effect.gen(function*() {
        const writer = yield* rings.writer(RING)
        child.send({ attach: true })
        yield* nextMessage(child)
        const commitEvery = Math.max(1, Math.min(COMMIT_EVERY, Math.floor(COMMIT_BYTES / size)))
        const started = performance.now()
        for (let n = 0; n < count; n++) {
          let at = writer.tryReserve(size)
          if (at < 0) at = yield* writer.reserve(size)
          writer.bytes.set(payload, at)
          if (n % commitEvery === commitEvery - 1) writer.commit()
        }
        yield* writer.close
        const received = yield* nextMessage<Received>(child)
        if (received.frames !== count || received.bytes !== count * size) {
          return yield* Effect.die(new Error(`ring reader got ${received.frames} frames / ${received.bytes} bytes, sent ${count}`))
        }
        return (performance.now() - started) / 1000
      }))
      seconds.push(elapsed)
    }
    return seconds
  })

const ringReader = (name: string) =>
  Effect.gen(function*() {
    const rings = yield* Rings
    process.send!("ready")
    for (;;) {
      yield* nextMessage(process as unknown as ChildProcess)
      const received: Received = { frames: 0, bytes: 0, touched: 0 }
      yield* Effect.scoped(Effect.gen(function*() {
        const reader = yield* rings.reader(RING)
        process.send!("attached")
        yield* Effect.gen(function*() {
          for (;;) {
            const batch = yield* reader.take()
            for (let i = 0; i < batch.count; i++) touch(received, batch.bytes, batch.offsets[i]!, batch.lengths[i]!)
          }
        }).pipe(Effect.catchTag("RingClosed", () => Effect.void))
      }))
      process.send!(received)
    }
  }).pipe(Effect.provide(regionLayers(name, CHILD_BELL, "attach")))

/** Sends `count` copies of `payload` through `send`, at most WINDOW ahead of the receiver's acks. */
const windowed = (count: number, send: () => void, acks: { acked: number; wake?: () => void }) =>
  Effect.gen(function*() {
    for (let n = 0; n < count; n++) {
      if (n - acks.acked >= WINDOW) {
        yield* Effect.async<void>((resume) => {
          acks.wake = () => resume(Effect.void)
        })
      }
      send()
    }
  })

const onAck = (acks: { acked: number; wake?: () => void }) => (message: unknown) => {
  if (typeof message === "number") {
    acks.acked = message
    const wake = acks.wake
    delete acks.wake
    wake?.()
  }
}

/** child_process IPC with structured-clone serialization, so bytes go as bytes. */
const ipcRun = (all: ReadonlyArray<Case>) =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(fileURLToPath(import.meta.url), ["--ipc-reader"], { stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "advanced" })
      ),
      (c) => Effect.sync(() => void c.kill("SIGKILL"))
    )
    yield* nextMessage(child)
    const seconds: Array<number> = []
    for (const { size, ipc: count } of all) {
      const payload = payloadOf(size)
      const acks: { acked: number; wake?: () => void } = { acked: 0 }
      const listener = onAck(acks)
      child.send({ expect: count })
      yield* nextMessage(child)
      child.on("message", listener)
      const started = performance.now()
      const done = Effect.async<Received>((resume) => {
        const finish = (m: unknown) => {
          if (typeof m === "object") {
            child.off("message", finish)
            resume(Effect.succeed(m as Received))
          }
        }
        child.on("message", finish)
      })
      const [, received] = yield* Effect.all([windowed(count, () => child.send(payload), acks), done], { concurrency: "unbounded" })
      child.off("message", listener)
      if (received.frames !== count || received.bytes !== count * size) return yield* Effect.die(new Error("ipc receiver lost messages"))
      seconds.push((performance.now() - started) / 1000)
    }
    return seconds
  })

/** A receiver for the IPC and MessagePort paths: acks every ACK_EVERY messages, reports at `expect`. */
const receiver = (post: (message: unknown) => void) => {
  let expected = 0
  let received: Received = { frames: 0, bytes: 0, touched: 0 }
  return (message: unknown) => {
    if (message instanceof Uint8Array) {
      touch(received, message, 0, message.length)
      if (received.frames === expected) post(received)
      else if (received.frames % ACK_EVERY === 0) post(received.frames)
    } else {
      expected = (message as { expect: number }).expect
      received = { frames: 0, bytes: 0, touched: 0 }
      post("armed")
    }
  }
}

/** A worker thread reading a MessagePort (structured clone of each Uint8Array). */
const portRun = (all: ReadonlyArray<Case>) =>
  Effect.gen(function*() {
    const { port1, port2 } = new MessageChannel()
    yield* Effect.acquireRelease(
      Effect.sync(() => new Worker(fileURLToPath(import.meta.url), { argv: ["--port-reader"], workerData: { port: port2 }, transferList: [port2] })),
      (w) => Effect.promise(() => w.terminate())
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => port1.close()))
    const seconds: Array<number> = []
    for (const { size, port: count } of all) {
      const payload = payloadOf(size)
      const acks: { acked: number; wake?: () => void } = { acked: 0 }
      port1.postMessage({ expect: count })
      yield* nextMessage(port1)
      const listener = onAck(acks)
      port1.on("message", listener)
      const started = performance.now()
      const done = Effect.async<Received>((resume) => {
        const finish = (m: unknown) => {
          if (typeof m === "object") {
            port1.off("message", finish)
            resume(Effect.succeed(m as Received))
          }
        }
        port1.on("message", finish)
      })
      const [, received] = yield* Effect.all([windowed(count, () => port1.postMessage(payload), acks), done], { concurrency: "unbounded" })
      port1.off("message", listener)
      if (received.frames !== count) return yield* Effect.die(new Error("port receiver lost messages"))
      seconds.push((performance.now() - started) / 1000)
    }
    return seconds
  })

const regionLayers = (name: string, bell: number, mode: "create" | "attach") =>
  RingsLayers.layer.pipe(
    Layer.provideMerge(DoorbellLayers.layer({ offset: bell })),
    Layer.provideMerge(CxlMemoryLayers.layer({
      name,
      mode,
      ...(mode === "create" ? { size: Math.ceil((RING.offset + ringFootprint(RING.dataBytes, RING.readerSlots)) / 4096) * 4096 } : {})
    }))
  )

export const run = (args: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const scale = Number(args.find((a) => a.startsWith("--scale="))?.slice(8) ?? 1)
    const all = cases(scale)
    const name = `cxlog-bench-rings-${process.pid}`
    const ring = yield* ringRun(name, all).pipe(Effect.provide(regionLayers(name, PARENT_BELL, "create")))
    const ipc = yield* ipcRun(all)
    const port = yield* portRun(all)
    const rows: Array<Array<string | number>> = []
    const figures: Record<string, number> = {}
    all.forEach((c, i) => {
      const rate = (count: number, seconds: number) => count / seconds
      const ringRate = rate(c.ring, ring[i]!)
      const ipcRate = rate(c.ipc, ipc[i]!)
      const portRate = rate(c.port, port[i]!)
      const label = c.size >= 1024 ? `${c.size / 1024} KiB` : `${c.size} B`
      rows.push([label, "ring", Math.round(ringRate), (ringRate * c.size) / 1e9, 1, c.ring])
      rows.push([label, "process.send", Math.round(ipcRate), (ipcRate * c.size) / 1e9, ringRate / ipcRate, c.ipc])
      rows.push([label, "MessagePort", Math.round(portRate), (portRate * c.size) / 1e9, ringRate / portRate, c.port])
      figures[`ring${c.size}FramesPerSec`] = Math.round(ringRate)
      figures[`processSend${c.size}MessagesPerSec`] = Math.round(ipcRate)
      figures[`messagePort${c.size}MessagesPerSec`] = Math.round(portRate)
      figures[`ring${c.size}GBps`] = (ringRate * c.size) / 1e9
    })
    const ratio = figures["ring64FramesPerSec"]! / figures["processSend64MessagesPerSec"]!
    emit(table(["frame", "transport", "frames/s", "GB/s", "ring ÷ this (frames/s)", "frames"], rows), {
      bench: "rings",
      ...figures,
      ratio
    })
  }))

if (process.argv[2] === "--ring-reader") {
  Effect.runPromise(ringReader(process.argv[3]!)).then(() => process.exit(0), (e) => {
    console.error(e)
    process.exit(1)
  })
} else if (process.argv[2] === "--ipc-reader") {
  process.on("message", receiver((m) => process.send!(m)))
  process.send!("ready")
} else if (process.argv[2] === "--port-reader" && parentPort !== null) {
  const port = (workerData as { port: MessagePort }).port
  port.on("message", receiver((m) => port.postMessage(m)))
}
