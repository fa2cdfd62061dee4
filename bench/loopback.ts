/**
 * bench loopback: the loopback TCP bound — one Node process streaming bytes to another over
 * 127.0.0.1 — next to publisher → broker throughput over the same loopback, with the broker
 * (over the in-memory log) in its own process. `ratio` = publisher MB/s over loopback MB/s.
 *
 * Flags: --bytes=N (default 256 MiB), --message=N (1024), --chunk=N (loopback write size,
 * 65536), --batch=N (publisher batch bytes, 65536), --ack=0|1|2 (1), --broker-count=N (1; several
 * broker servers in the one broker process, sharing its log), --window=N (64).
 */
import { Effect } from "effect"
import { type ChildProcess, fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as BrokerLayers from "../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../src/layers/net/BrokerLogMemory.js"
import * as PublisherLayers from "../src/layers/net/Publisher.js"
import { measureLoopbackMBps } from "../src/programs/bench/Loopback.js"
import { emit, summarize, table } from "./Report.js"

const MB = 1e6
const self = fileURLToPath(import.meta.url)

const spawnSelf = (args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => fork(self, args, { stdio: ["ignore", "inherit", "inherit", "ipc"] })),
    (child) => Effect.sync(() => void child.kill("SIGKILL"))
  )

const firstMessage = <A>(child: ChildProcess) =>
  Effect.async<A, Error>((resume) => {
    child.once("message", (m) => resume(Effect.succeed(m as A)))
    child.once("exit", (code) => resume(Effect.fail(new Error(`bench child exited with ${code}`))))
  })

/** The broker process: `count` brokers over one in-memory log (no payloads retained), ports sent to the parent. */
const brokerProcess = (count: number, maxBatchBytes: number) =>
  Effect.scoped(Effect.gen(function*() {
    const log = yield* BrokerLogLayers.makeMemoryLog({
      topics: [{ name: "bench" }],
      retainOrdered: false,
      brokers: count,
      maxBatchBytes
    })
    const ports: Array<number> = []
    for (let id = 0; id < count; id++) {
      const broker = yield* BrokerLayers.make({ insecure: true, maxBatchBytes }).pipe(
        Effect.provide(BrokerLogLayers.layerMemory(log, id))
      )
      ports.push(broker.port)
    }
    process.send!({ ports })
    yield* Effect.never
  }))

const flag = (args: ReadonlyArray<string>, name: string, fallback: number) => {
  const value = args.find((a) => a.startsWith(`--${name}=`))
  return value === undefined ? fallback : Number(value.slice(name.length + 3))
}

export const run = (args: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const totalBytes = flag(args, "bytes", 256 << 20)
    const messageBytes = flag(args, "message", 1024)
    const chunkBytes = flag(args, "chunk", 64 << 10)
    const batchBytes = flag(args, "batch", 64 << 10)
    const ackLevel = flag(args, "ack", 1) as 0 | 1 | 2
    const brokerCount = flag(args, "broker-count", 1)
    const window = flag(args, "window", 64)
    const maxBatchBytes = Math.max(1 << 20, batchBytes)

    const loopbackMBps = yield* measureLoopbackMBps(totalBytes, chunkBytes)

    const brokerChild = yield* spawnSelf(["--broker", String(brokerCount), String(maxBatchBytes)])
    const { ports } = yield* firstMessage<{ ports: Array<number> }>(brokerChild)
    const publisher = yield* PublisherLayers.make({
      brokers: ports.map((port) => ({ host: "127.0.0.1", port })),
      topic: "bench",
      ackLevel,
      batchBytes,
      maxBatchBytes,
      maxInFlightBatches: window
    })
    const message = new Uint8Array(messageBytes).fill(1)
    const messages = Math.floor(totalBytes / messageBytes)
    const started = performance.now()
    for (let i = 0; i < messages; i++) {
      const taken = publisher.tryPublish(message)
      if (taken === true) continue
      if (taken !== false) return yield* Effect.fail(taken)
      yield* publisher.publish(message)
    }
    yield* publisher.flush(120_000)
    const seconds = (performance.now() - started) / 1000
    const publisherMBps = (messages * messageBytes) / MB / seconds
    const latency = summarize(Array.from(publisher.ackLatencies()))
    const stats = publisher.stats()

    const text = table(["path (same run)", "MB/s", "ACK p50 µs", "ACK p99 µs", "batches"], [
      [`loopback TCP, one stream, ${chunkBytes} B writes`, loopbackMBps, "-", "-", "-"],
      [
        `publisher → ${brokerCount} broker(s), in-memory log, ${messageBytes} B messages, ACK ${ackLevel}`,
        publisherMBps,
        latency.p50,
        latency.p99,
        stats.batches
      ]
    ])
    emit(text, {
      bench: "loopback",
      totalBytes,
      messageBytes,
      batchBytes,
      ackLevel,
      brokers: brokerCount,
      loopbackMBps,
      throughputMBps: publisherMBps,
      messagesPerSecond: messages / seconds,
      ackLatencyP50Us: latency.p50,
      ackLatencyP99Us: latency.p99,
      ratio: publisherMBps / loopbackMBps
    })
  }))

if (process.argv[2] === "--broker") {
  Effect.runPromise(brokerProcess(Number(process.argv[3]), Number(process.argv[4]))).catch((error) => {
    console.error(error)
    process.exit(1)
  })
}
