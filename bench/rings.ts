/**
 * bench rings: one-way throughput from one process to another for 64 B, 1 KiB and 64 KiB
 * frames: a cxlog ring (writer here, reader in a child process), `process.send` to a child
 * (child_process IPC, advanced serialization) and a `worker_threads` MessagePort, in the same
 * run on the same payloads. Every receiver touches each payload's first and last byte.
 * The ring writer commits every 32 frames (64 KiB at most), so `process.send` runs twice: with
 * the same batching (one send carries an array of as many distinct frames as one commit) and
 * one frame per send.
 * `ratio` = ring frames/s over batched process.send frames/s for 64 B frames (like for like);
 * `ratioUnbatched` is the same over one process.send per frame.
 * Flags: --scale=N multiplies the frame counts (default 1).
 */
import { Effect, Layer } from "effect"
import { type ChildProcess, fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import { MessageChannel, type MessagePort, parentPort, Worker, workerData } from "node:worker_threads"
import * as RingsLayers from "../src/layers/control/Rings.js"
import * as CxlMemoryLayers from "../src/layers/region/CxlMemory.js"
import * as DoorbellLayers from "../src/layers/region/Doorbell.js"
import { type RingAddress, ringFootprint, Rings } from "../src/services/control/Rings.js"
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
  /** Frames for process.send carrying a commit's worth of frames per send. */
  readonly ipcBatched: number
  readonly port: number
}

const cases = (scale: number): ReadonlyArray<Case> =>
  [
    { size: 64, ring: 4_000_000, ipc: 200_000, ipcBatched: 1_000_000, port: 400_000 },
    { size: 1024, ring: 1_000_000, ipc: 100_000, ipcBatched: 400_000, port: 200_000 },
    { size: 65536, ring: 40_000, ipc: 10_000, ipcBatched: 10_000, port: 20_000 }
  ].map((c) => ({
    size: c.size,
    ring: Math.ceil(c.ring * scale),
    ipc: Math.ceil(c.ipc * scale),
    ipcBatched: Math.ceil(c.ipcBatched * scale),
    port: Math.ceil(c.port * scale)
  }))

/** Frames per ring commit for `size`-byte frames, and so per batched process.send. */
const framesPerCommit = (size: number) => Math.max(1, Math.min(COMMIT_EVERY, Math.floor(COMMIT_BYTES / size)))

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
      Effect.sync(() =>
        fork(fileURLToPath(import.meta.url), ["--ring-reader", name], {
          stdio: ["ignore", "inherit", "inherit", "ipc"]
        })
      ),
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
        const commitEvery = framesPerCommit(size)
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
          return yield* Effect.die(
            new Error(`ring reader got ${received.frames} frames / ${received.bytes} bytes, sent ${count}`)
          )
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

/** Sends `count` frames, `perSend` at a time, through `send(frames)`, at most WINDOW frames ahead of the receiver's acks. */
const windowed = (
  count: number,
  perSend: number,
  send: (frames: number) => void,
  acks: { acked: number; wake?: () => void }
) =>
  Effect.gen(function*() {
    for (let n = 0; n < count; n += perSend) {
      if (n - acks.acked >= WINDOW) {
        yield* Effect.async<void>((resume) => {
          acks.wake = () => resume(Effect.void)
        })
      }
      send(Math.min(perSend, count - n))
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

/**
 * child_process IPC with structured-clone serialization, so bytes go as bytes. `batched`: each
 * send carries an array of one ring commit's worth of distinct frames (distinct objects, so
 * the serializer cannot write one and refer back to it); sizes whose commit is one frame are
 * skipped (undefined), as that is the unbatched run.
 */
const ipcRun = (all: ReadonlyArray<Case>, batched: boolean) =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(fileURLToPath(import.meta.url), ["--ipc-reader"], {
          stdio: ["ignore", "inherit", "inherit", "ipc"],
          serialization: "advanced"
        })
      ),
      (c) => Effect.sync(() => void c.kill("SIGKILL"))
    )
    yield* nextMessage(child)
    const seconds: Array<number | undefined> = []
    for (const { ipc, ipcBatched, size } of all) {
      const count = batched ? ipcBatched : ipc
      const perSend = batched ? framesPerCommit(size) : 1
      if (batched && perSend === 1) {
        seconds.push(undefined)
        continue
      }
      const payload = payloadOf(size)
      const frames = Array.from({ length: perSend }, () => payloadOf(size))
      const arrays = frames.map((_, k) => frames.slice(0, k + 1))
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
      const send = batched ? (k: number) => void child.send(arrays[k - 1]) : () => void child.send(payload)
      const [, received] = yield* Effect.all([windowed(count, perSend, send, acks), done], { concurrency: "unbounded" })
      child.off("message", listener)
      if (received.frames !== count || received.bytes !== count * size) {
        return yield* Effect.die(new Error("ipc receiver lost messages"))
      }
      seconds.push((performance.now() - started) / 1000)
    }
    return seconds
  })

/** A receiver for the IPC and MessagePort paths (a frame, or an array of frames): acks every ACK_EVERY frames, reports at `expect`. */
const receiver = (post: (message: unknown) => void) => {
  let expected = 0
  let received: Received = { frames: 0, bytes: 0, touched: 0 }
  return (message: unknown) => {
    if (message instanceof Uint8Array || Array.isArray(message)) {
      const before = received.frames
      if (message instanceof Uint8Array) touch(received, message, 0, message.length)
      else for (const frame of message as Array<Uint8Array>) touch(received, frame, 0, frame.length)
      if (received.frames === expected) post(received)
      else if (Math.floor(received.frames / ACK_EVERY) > Math.floor(before / ACK_EVERY)) post(received.frames)
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
      Effect.sync(() =>
        new Worker(fileURLToPath(import.meta.url), {
          argv: ["--port-reader"],
          workerData: { port: port2 },
          transferList: [port2]
        })
      ),
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
      const [, received] = yield* Effect.all([windowed(count, 1, () => port1.postMessage(payload), acks), done], {
        concurrency: "unbounded"
      })
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
      ...(mode === "create"
        ? { size: Math.ceil((RING.offset + ringFootprint(RING.dataBytes, RING.readerSlots)) / 4096) * 4096 }
        : {})
    }))
  )

export const run = (args: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const scale = Number(args.find((a) => a.startsWith("--scale="))?.slice(8) ?? 1)
    const all = cases(scale)
    const name = `cxlog-bench-rings-${process.pid}`
    const ring = yield* ringRun(name, all).pipe(Effect.provide(regionLayers(name, PARENT_BELL, "create")))
    const ipcBatched = yield* ipcRun(all, true)
    const ipc = yield* ipcRun(all, false)
    const port = yield* portRun(all)
    const rows: Array<Array<string | number>> = []
    const figures: Record<string, number> = {}
    all.forEach((c, i) => {
      const rate = (count: number, seconds: number) => count / seconds
      const ringRate = rate(c.ring, ring[i]!)
      const ipcRate = rate(c.ipc, ipc[i]!)
      const perSend = framesPerCommit(c.size)
      const batchedSeconds = ipcBatched[i]
      const ipcBatchedRate = batchedSeconds === undefined ? ipcRate : rate(c.ipcBatched, batchedSeconds)
      const portRate = rate(c.port, port[i]!)
      const label = c.size >= 1024 ? `${c.size / 1024} KiB` : `${c.size} B`
      rows.push([label, "ring", Math.round(ringRate), (ringRate * c.size) / 1e9, 1, c.ring])
      if (perSend > 1) {
        rows.push([
          label,
          `process.send, ${perSend} per send`,
          Math.round(ipcBatchedRate),
          (ipcBatchedRate * c.size) / 1e9,
          ringRate / ipcBatchedRate,
          c.ipcBatched
        ])
      }
      rows.push([
        label,
        `process.send, 1 per send${perSend === 1 ? " (= a commit)" : ""}`,
        Math.round(ipcRate),
        (ipcRate * c.size) / 1e9,
        ringRate / ipcRate,
        c.ipc
      ])
      rows.push([label, "MessagePort", Math.round(portRate), (portRate * c.size) / 1e9, ringRate / portRate, c.port])
      figures[`ring${c.size}FramesPerSec`] = Math.round(ringRate)
      figures[`processSendBatched${c.size}FramesPerSec`] = Math.round(ipcBatchedRate)
      figures[`processSend${c.size}MessagesPerSec`] = Math.round(ipcRate)
      figures[`messagePort${c.size}MessagesPerSec`] = Math.round(portRate)
      figures[`ring${c.size}GBps`] = (ringRate * c.size) / 1e9
    })
    const ratio = figures["ring64FramesPerSec"]! / figures["processSendBatched64FramesPerSec"]!
    const ratioUnbatched = figures["ring64FramesPerSec"]! / figures["processSend64MessagesPerSec"]!
    emit(table(["frame", "transport", "frames/s", "GB/s", "ring ÷ this (frames/s)", "frames"], rows), {
      bench: "rings",
      ...figures,
      ratioUnbatched,
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
