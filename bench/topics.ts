/**
 * bench topics: one publisher, many topics (#42's `manyTopicsRatio`). A head (with topic `one`), the
 * `--topics` topics `many.NNNNN` (created through it by `cxlog create-topic`) and `--broker-count`
 * brokers run as `cxlog` processes over a region of their own; this process publishes `--bytes` of
 * `--message`-byte messages through one TCP publisher, first into `one`, then spread round-robin
 * over the many, alternating `--rounds` times, each phase until everything is acknowledged. `ratio`
 * = MB/s over the many topics ÷ MB/s into one topic (medians of the rounds, same run); the CPU
 * seconds per GiB of every process (head, brokers, publisher) say the same where the host's load
 * moves MB/s around.
 *
 * Flags: --topics=N (1000), --bytes=N (256 MiB), --message=N (1024), --broker-count=N (2),
 * --rounds=N (2), --many-memory=N (each of the many's memory: 2 MiB, so that a thousand fit the
 * default 2 GiB heap beside `one`), --one-memory=N (`one`'s memory,
 * 32 MiB), --window=N (256).
 */
import { Effect } from "effect"
import { type ChildProcess, fork } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { defaultLogConfig } from "../src/layers/log/Layout.js"
import * as PublisherLayers from "../src/layers/net/Publisher.js"
import { packageRoot } from "../src/PackageRoot.js"
import type { PublisherShape } from "../src/services/net/Publisher.js"
import { emit, summarize, table } from "./Report.js"

const MB = 1e6

const flag = (args: ReadonlyArray<string>, name: string, fallback: number) => {
  const value = args.find((a) => a.startsWith(`--${name}=`))
  return value === undefined ? fallback : Number(value.slice(name.length + 3))
}

/** `cxlog <args>` with an IPC channel, killed when the scope closes; resolves with its first `event` message. */
const role = (args: ReadonlyArray<string>, env: Record<string, string>, event: string) =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(join(packageRoot(), "dist", "cxlog.mjs"), args, {
          env: { ...process.env, ...env },
          stdio: ["ignore", "ignore", "inherit", "ipc"]
        })
      ),
      (child) => Effect.sync(() => void child.kill("SIGKILL"))
    )
    const ready = yield* Effect.async<Record<string, unknown>, Error>((resume) => {
      const onMessage = (m: unknown) => {
        const message = m as Record<string, unknown>
        if (message["event"] === event) resume(Effect.succeed(message))
        if (message["event"] === "failed") {
          resume(Effect.fail(new Error(`${args[0]} failed: ${JSON.stringify(message)}`)))
        }
      }
      ;(child as ChildProcess).on("message", onMessage)
      child.once("exit", (code) =>
        resume(
          event === "exit" && code === 0
            ? Effect.succeed({})
            : Effect.fail(new Error(`${args[0]} exited with ${code}`))
        ))
    })
    return { ready, pid: child.pid! }
  })

/** CPU seconds a process has used (Linux: /proc/PID/stat, in clock ticks of 1/100 s). */
const cpuSecondsOf = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** Publishes `messages` messages of `payload`, message i to `topics[i % topics.length]`; MB/s until all are acknowledged. */
const phase = (
  publisher: PublisherShape,
  topics: ReadonlyArray<{ readonly topic: string }>,
  messages: number,
  payload: Uint8Array
) =>
  Effect.gen(function*() {
    const started = performance.now()
    for (let i = 0; i < messages; i++) {
      const options = topics[i % topics.length]
      const taken = publisher.tryPublish(payload, options)
      if (taken === true) continue
      if (taken !== false) return yield* Effect.fail(taken)
      yield* publisher.publish(payload, options)
    }
    yield* publisher.flush(300_000)
    return (messages * payload.length) / MB / ((performance.now() - started) / 1000)
  })

const median = (values: ReadonlyArray<number>) => summarize([...values]).p50

export const run = (args: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const topicCount = flag(args, "topics", 1000)
    const totalBytes = flag(args, "bytes", 256 << 20)
    const messageBytes = flag(args, "message", 1024)
    const brokerCount = flag(args, "broker-count", 2)
    const rounds = flag(args, "rounds", 2)
    const manyMemory = flag(args, "many-memory", 2 << 20)
    const oneMemory = flag(args, "one-memory", 32 << 20)
    const window = flag(args, "window", 256)
    const region = `cxlog-bench-topics-${process.pid}`
    const shape = {
      ...defaultLogConfig,
      maxBrokers: brokerCount,
      maxBatchBytes: 256 << 10,
      goiSlots: 4096,
      pbrSlots: 1024
    }
    const env: Record<string, string> = {
      CXLOG_REGION: region,
      CXLOG_LOG_MAX_BROKERS: `${shape.maxBrokers}`,
      CXLOG_LOG_MAX_BATCH_BYTES: `${shape.maxBatchBytes}`,
      CXLOG_LOG_GOI_SLOTS: `${shape.goiSlots}`,
      CXLOG_LOG_PBR_SLOTS: `${shape.pbrSlots}`,
      CXLOG_TOPIC_MEMORY: `${oneMemory}`
    }
    const many = Array.from({ length: topicCount }, (_, i) => `many.${String(i).padStart(5, "0")}`)
    const head = yield* role(["head", "--topic", "one:5:1"], env, "ready")
    yield* role(
      [
        "create-topic",
        ...many.flatMap((name) => ["--topic", `${name}:5:1`]),
        "--memory",
        `${manyMemory}`
      ],
      env,
      "exit"
    )
    const pids = [head.pid]
    const ports: Array<number> = []
    for (let b = 0; b < brokerCount; b++) {
      const broker = yield* role(["broker", "--broker-id", `${b}`, "--port", "0"], env, "listening")
      ports.push(broker.ready["port"] as number)
      pids.push(broker.pid)
    }
    /** CPU seconds of the cluster's processes (head, brokers) and this one (the publisher) so far. */
    const cpus = () => {
      const own = process.cpuUsage()
      return [...pids.map(cpuSecondsOf), (own.user + own.system) / 1e6]
    }
    const publisher = yield* PublisherLayers.make({
      brokers: ports.map((port) => ({ host: "127.0.0.1", port })),
      region,
      batchBytes: 64 << 10,
      maxBatchBytes: shape.maxBatchBytes,
      maxInFlightBatches: window
    })
    const payload = new Uint8Array(messageBytes).fill(7)
    const messages = Math.floor(totalBytes / messageBytes)
    const one = [{ topic: "one" }]
    const spread = many.map((topic) => ({ topic }))
    // Every topic's session registered and warm before the clock runs.
    yield* phase(publisher, spread, topicCount * 64, payload)
    yield* phase(publisher, one, 4096, payload)
    const gib = (messages * messageBytes) / 2 ** 30
    const measured = (into: ReadonlyArray<{ readonly topic: string }>) =>
      Effect.gen(function*() {
        const cpuBefore = cpus()
        const batchesBefore = publisher.stats().batches
        const mbps = yield* phase(publisher, into, messages, payload)
        const perProcess = cpus().map((seconds, i) => (seconds - cpuBefore[i]!) / gib)
        return {
          mbps,
          perProcess,
          cpuPerGiB: perProcess.reduce((sum, c) => sum + c, 0),
          messagesPerBatch: messages / (publisher.stats().batches - batchesBefore)
        }
      })
    type Run = { mbps: number; perProcess: ReadonlyArray<number>; cpuPerGiB: number; messagesPerBatch: number }
    const oneRuns: Array<Run> = []
    const manyRuns: Array<Run> = []
    /** Median CPU s/GiB of each process: the head, the brokers, the publisher. */
    const byProcess = (runs: ReadonlyArray<Run>) => {
      const at = (i: number) => Number(median(runs.map((run) => run.perProcess[i]!)).toFixed(2))
      return { head: at(0), brokers: pids.slice(1).map((_, b) => at(1 + b)), publisher: at(pids.length) }
    }
    for (let r = 0; r < rounds; r++) {
      oneRuns.push(yield* measured(one))
      manyRuns.push(yield* measured(spread))
    }
    const oneTopic = median(oneRuns.map((run) => run.mbps))
    const manyTopics = median(manyRuns.map((run) => run.mbps))
    const row = (label: string, runs: typeof oneRuns) => [
      label,
      median(runs.map((run) => run.mbps)),
      median(runs.map((run) => run.cpuPerGiB)),
      median(runs.map((run) => run.messagesPerBatch)),
      runs.map((run) => run.mbps.toFixed(0)).join(" ")
    ]
    const text = table(["publisher (same run)", "MB/s", "CPU s/GiB", "messages/batch", "rounds' MB/s"], [
      row(`1 topic, ${messageBytes} B messages, ${brokerCount} broker(s)`, oneRuns),
      row(`${topicCount} topics round-robin`, manyRuns)
    ])
    emit(text, {
      bench: "topics",
      topics: topicCount,
      totalBytes,
      messageBytes,
      brokers: brokerCount,
      oneTopicMBps: oneTopic,
      manyTopicsMBps: manyTopics,
      oneTopicCpuSecondsPerGiB: median(oneRuns.map((run) => run.cpuPerGiB)),
      manyTopicsCpuSecondsPerGiB: median(manyRuns.map((run) => run.cpuPerGiB)),
      oneTopicMessagesPerBatch: median(oneRuns.map((run) => run.messagesPerBatch)),
      manyTopicsMessagesPerBatch: median(manyRuns.map((run) => run.messagesPerBatch)),
      oneTopicCpuByProcess: byProcess(oneRuns),
      manyTopicsCpuByProcess: byProcess(manyRuns),
      manyTopicsRatio: manyTopics / oneTopic,
      ratio: manyTopics / oneTopic
    })
  }))
