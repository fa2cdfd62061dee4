/**
 * bench durable (#15): the durable tier's two goals, each against its same-run reference.
 *
 * 1. ACK 2 throughput: `cxlog run` e2e (1 KiB messages, order 5, 4 brokers, the CLI's batch
 *    and window defaults), alternating ACK 1 and ACK 2 `--runs` times each (default 3);
 *    medians, and ACK 2's fdatasyncs and bytes per fdatasync. `ratio` = ACK 2 / ACK 1 (goal ≥ 0.5).
 * 2. Recovery: a head with a data directory takes `--recover-bytes` (default 256 MiB) of
 *    1 KiB messages at ACK 2 through one broker; both are SIGKILLed and the region removed.
 *    Then the stream's files are read sequentially (1 MiB reads; the page cache is as warm for
 *    both), and `cxlog head --recover` rebuilds the log in a new region: its time to ready,
 *    less a plain head's time to ready, against the sequential read; the three alternate `--runs`
 *    times and each is a median. `recoveryRatio` (goal ≥ 0.5). The recovering head also times
 *    itself (from its first read of the stream until its tier writes again: `recoveredMs` in its
 *    ready event), which the swings of two process starts on a loaded machine do not blur:
 *    `recoveryRatioInHead`.
 * Flags: --bytes=SIZE (default 128MiB), --runs=N, --ack-runs=N (default --runs; 0 measures
 * recovery alone), --recover-bytes=SIZE. Every process is
 * stopped and every region and data directory removed when the bench ends.
 */
import { Effect } from "effect"
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, unlinkSync } from "node:fs"
import { open } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { streamOf } from "../src/layers/log/durable/DurableOrder.js"
import { regionGuard, spawnRole } from "../src/programs/run/Cluster.js"
import { run as runCluster } from "../src/programs/run/Run.js"
import { emit, table } from "./Report.js"

const flag = (args: ReadonlyArray<string>, name: string, fallback: number): number => {
  const raw = args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
  if (raw === undefined) return fallback
  const m = /^(\d+)(KiB|MiB|GiB)?$/.exec(raw)
  if (m === null) throw new Error(`--${name}=${raw}: a number, or a size such as 64MiB`)
  return Number(m[1]) * ({ KiB: 1 << 10, MiB: 1 << 20, GiB: 1 << 30 }[m[2] as "KiB"] ?? 1)
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0

/** A scoped temporary directory. */
const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), prefix))),
    (d) => Effect.sync(() => rmSync(d, { recursive: true, force: true }))
  )

/** A scoped region name: the region, its wake FIFOs and its credential files are removed at the end whatever happened. */
const regionName = (label: string) => {
  const name = `cxlog-bench-durable-${label}-${process.pid}`
  return Effect.as(regionGuard(name), name)
}

/** The stream's segment files (not its header indexes nor its lock), oldest first. */
const segmentFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith(".seg")).sort()

/** Sequential read of every segment file in `dir`, 1 MiB at a time: MB/s and bytes. */
const sequentialRead = (dir: string) =>
  Effect.promise(async () => {
    const buf = Buffer.allocUnsafe(1 << 20)
    let bytes = 0
    const started = performance.now()
    for (const name of segmentFiles(dir)) {
      const fh = await open(join(dir, name), "r")
      try {
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, null)
          if (bytesRead === 0) break
          bytes += bytesRead
        }
      } finally {
        await fh.close()
      }
    }
    return { bytes, mBps: bytes / 1e6 / ((performance.now() - started) / 1000) }
  })

/** Milliseconds from spawning `cxlog head ARGS` until it reports ready, and its own recovery time if it recovered; then it is stopped. */
const headReadyMs = (args: ReadonlyArray<string>, region: string) =>
  Effect.scoped(Effect.gen(function*() {
    const started = performance.now()
    const head = yield* spawnRole("head", ["head", "--region", region, ...args])
    const ready = yield* head.event("ready", 600_000)
    return {
      ms: performance.now() - started,
      recoveredMs: typeof ready["recoveredMs"] === "number" ? ready["recoveredMs"] : 0
    }
  }))

const recovery = (recoverBytes: number, repeats: number) =>
  Effect.scoped(Effect.gen(function*() {
    const dir = yield* tempDir("cxlog-bench-durable-")
    const first = yield* regionName("a")
    const messages = Math.floor(recoverBytes / 1024)
    yield* Effect.scoped(Effect.gen(function*() {
      const env = { CXLOG_REGION: first }
      const head = yield* spawnRole("head", ["head", "--topic", "d:5:2:2", "--data-dir", dir], env)
      yield* head.event("ready", 30_000)
      const broker = yield* spawnRole("broker", ["broker", "--broker-id", "0", "--port", "0"], env)
      const port = (yield* broker.event("listening", 30_000))["port"] as number
      const publisher = yield* spawnRole("publisher", [
        "publish",
        "--brokers",
        `127.0.0.1:${port}`,
        "--topic",
        "d",
        "--count",
        `${messages}`,
        "--message-bytes",
        "1024",
        "--ack",
        "2"
      ], env)
      yield* publisher.event("done", 600_000)
      head.kill("SIGKILL")
      broker.kill("SIGKILL")
    }))
    // The region is lost (its wake FIFOs and credential files go with the guard at the end).
    yield* Effect.sync(() => existsSync(`/dev/shm/${first}`) && unlinkSync(`/dev/shm/${first}`))
    const streamDir = join(dir, streamOf("d"))
    const onDisk = segmentFiles(streamDir).reduce((n, f) => n + statSync(join(streamDir, f)).size, 0)
    // A head's start swings by hundreds of ms on a loaded machine: read, plain head and recovering head alternate, medians of each.
    const reads: Array<number> = []
    const plain: Array<number> = []
    const recovering: Array<number> = []
    const inHead: Array<number> = []
    for (let i = 0; i < repeats; i++) {
      reads.push((yield* sequentialRead(streamDir)).mBps)
      plain.push((yield* headReadyMs(["--topic", "d:5:1"], yield* regionName(`b${i}`))).ms)
      const recovered = yield* headReadyMs(["--topic", "d:5:2:2", "--recover", dir], yield* regionName(`c${i}`))
      recovering.push(recovered.ms)
      inHead.push(recovered.recoveredMs)
    }
    const plainMs = median(plain)
    const recoverMs = median(recovering)
    const recoveryMBps = onDisk / 1e6 / (Math.max(recoverMs - plainMs, 1) / 1000)
    const inHeadMs = median(inHead)
    const inHeadMBps = onDisk / 1e6 / (Math.max(inHeadMs, 1) / 1000)
    return {
      messages,
      onDisk,
      readMBps: median(reads),
      reads,
      plainMs,
      recoverMs,
      recoveryMBps,
      plain,
      recovering,
      inHead,
      inHeadMs,
      inHeadMBps
    }
  }))

export const run = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const totalBytes = flag(args, "bytes", 128 << 20)
    const runs = flag(args, "runs", 3)
    const ackRuns = flag(args, "ack-runs", runs)
    const recoverBytes = flag(args, "recover-bytes", 256 << 20)
    const shape = {
      totalBytes,
      messageBytes: 1024,
      brokers: 4,
      order: 5 as const,
      batchBytes: 64 << 10,
      window: 64,
      output: "silent" as const,
      subscriber: true
    }
    const ack1: Array<number> = []
    const ack2: Array<number> = []
    const fsyncs: Array<number> = []
    const perFsync: Array<number> = []
    for (let i = 0; i < ackRuns; i++) {
      ack1.push((yield* Effect.scoped(runCluster({ ...shape, ackLevel: 1 }))).throughputMBps)
      const durable = yield* Effect.scoped(runCluster({ ...shape, ackLevel: 2 }))
      ack2.push(durable.throughputMBps)
      fsyncs.push(durable.durable?.fsyncs ?? 0)
      perFsync.push(durable.durable?.bytesPerFsync ?? 0)
    }
    const rec = yield* recovery(recoverBytes, Math.max(1, runs))
    const ratio = ackRuns === 0 ? 0 : Math.round((median(ack2) / median(ack1)) * 1000) / 1000
    const recoveryRatio = Math.round((rec.recoveryMBps / rec.readMBps) * 1000) / 1000
    const recoveryRatioInHead = Math.round((rec.inHeadMBps / rec.readMBps) * 1000) / 1000
    const mb = (n: number) => Math.round(n * 10) / 10
    emit(
      table(["bench durable", "MB/s (median)", "runs", "fdatasyncs", "bytes/fdatasync"], [
        [
          `ACK 1, e2e, ${totalBytes >> 20} MiB of 1 KiB, order 5, 4 brokers (reference)`,
          mb(median(ack1)),
          ack1.map(mb).join(" "),
          "",
          ""
        ],
        ["ACK 2 (on disk)", mb(median(ack2)), ack2.map(mb).join(" "), median(fsyncs), median(perFsync)],
        [`sequential read of the stream (${mb(rec.onDisk / 1e6)} MB, reference)`, mb(rec.readMBps), "", "", ""],
        [
          `cxlog head --recover (${rec.messages} messages; ${Math.round(rec.recoverMs)} ms to ready less ${
            Math.round(rec.plainMs)
          } ms for a plain head)`,
          mb(rec.recoveryMBps),
          "",
          "",
          ""
        ],
        [
          `  the same, timed in the head (recovery to its tier writing again: ${Math.round(rec.inHeadMs)} ms)`,
          mb(rec.inHeadMBps),
          "",
          "",
          ""
        ]
      ]),
      {
        bench: "durable",
        ack1MBps: mb(median(ack1)),
        ack2MBps: mb(median(ack2)),
        ack1Runs: ack1,
        ack2Runs: ack2,
        fsyncs: median(fsyncs),
        bytesPerFsync: median(perFsync),
        recoverBytesOnDisk: rec.onDisk,
        plainHeadMs: rec.plain.map(Math.round),
        recoverHeadMs: rec.recovering.map(Math.round),
        sequentialReadRuns: rec.reads.map(mb),
        sequentialReadMBps: mb(rec.readMBps),
        recoveryMBps: mb(rec.recoveryMBps),
        recoveryRatio,
        recoveredInHeadMs: rec.inHead.map(Math.round),
        recoveryInHeadMBps: mb(rec.inHeadMBps),
        recoveryRatioInHead,
        ratio
      }
    )
  })
