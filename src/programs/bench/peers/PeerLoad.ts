/**
 * The workload a bench runs on a reference system (Redis Streams, NATS JetStream) beside
 * cxlog's, taken at the same clock points as cxlog's: the same count of same-sized messages,
 * published from this process with at most `window` requests awaiting their reply — as fast as
 * that allows, or paced at an offered load (what is due is sent each millisecond) — and, for
 * e2e, read back by a consumer in its own process (as cxlog's subscriber is) that checks every
 * message arrives once, in order, by the sequence number stamped in its first bytes.
 *
 * Clock points, as cxlog's (RunSummary.ts, MessageClock.ts): a message's ACK latency runs from
 * the call that hands it to the client to its reply; `publishMBps` from the first publish to
 * the last reply; `e2eMBps` from the first publish to the consumer's reading of the last
 * message. CPU: the server's from /proc, the client's this process's own usage (nothing else
 * runs here meanwhile: cxlog's roles are child processes) plus the consumer process's. What ran
 * is reported as the server saw it (messages stored, its storage), so the bench can check it
 * is cxlog's workload (BenchPeers.ts). A `PeerClient` says how one system sends, counts, reads
 * back and empties its stream.
 */
import { Effect, type Scope } from "effect"
import { percentile } from "../../report/Percentiles.js"
import { AUDIT_HEADER_BYTES } from "../../run/Audit.js"
import type { PeerConsumer } from "./PeerConsumerProcess.js"
import { payloadTemplate } from "./PeerReadBack.js"
import { PeerFailed } from "./PeerServer.js"

/** No reply for this long fails the run rather than hang it. */
const STALL_MS = 30_000
const WATCH_MS = 500

/** Where a system keeps what it acknowledged: in memory, or on disk before the ACK. */
export type StorageKind = "memory" | "disk"

export interface PeerStorage {
  readonly kind: StorageKind
  /** How, in the system's own terms (as its server's configuration says). */
  readonly detail: string
}

/** The storage matching cxlog's ACK level: memory up to ACK 1 (ordered in the region), disk at ACK 2 (fdatasynced). */
export const storageForAckLevel = (ackLevel: number): StorageKind => (ackLevel >= 2 ? "disk" : "memory")

/** Each message's payload bytes for `messageBytes`: as cxlog's stamped messages, at least their stamp. */
export const payloadBytesOf = (messageBytes: number) => Math.max(messageBytes, AUDIT_HEADER_BYTES)

export interface PeerWorkload {
  readonly type: "publish" | "e2e" | "latency"
  readonly messages: number
  readonly messageBytes: number
  /** `latency`: the offered load, MB/s. */
  readonly rateMBps: number
  /** Messages of the same workload run first and not measured (cxlog's `--warmup`), on a stream then emptied. */
  readonly warmupMessages: number
}

/** Where a peer's replies go: the index of each message acknowledged, in any order, or why one failed. */
export interface PeerReplies {
  readonly acked: (index: number) => void
  readonly failed: (reason: string) => void
}

export interface PeerClient {
  readonly peer: string
  /** Requests awaiting their reply, at most. */
  readonly window: number
  /** The server's CPU seconds so far (undefined where /proc is not). */
  readonly serverCpuSeconds: () => number | undefined
  /** What the server keeps the stream in, as it says. */
  readonly storage: Effect.Effect<PeerStorage, PeerFailed>
  /** An empty stream for the next run, the last run's removed. */
  readonly reset: Effect.Effect<void, PeerFailed>
  /** Messages the stream holds now, as the server counts them. */
  readonly stored: Effect.Effect<number, PeerFailed>
  /** Sends messages `first`, `first + 1`, … (`payloads`) together; each reply reaches `replies`. */
  readonly send: (first: number, payloads: ReadonlyArray<Buffer>, replies: PeerReplies) => void
  /** A consumer of its own reading the stream from its start, auditing `messages` of `payloadBytes`: reading once this resumes, stopped when the scope closes. */
  readonly startConsumer: (
    messages: number,
    payloadBytes: number
  ) => Effect.Effect<PeerConsumer, PeerFailed, Scope.Scope>
}

/**
 * How a consumer process reads a peer's stream back: from its start, each message's payload to
 * `received` in the stream's order; reading once this resumes, stopped when the scope closes.
 */
export type PeerReader = (
  received: (payload: Uint8Array) => void,
  failed: (reason: string) => void
) => Effect.Effect<void, PeerFailed, Scope.Scope>

export interface PeerCpu {
  readonly server: number
  readonly client: number
  readonly total: number
}

export interface PeerFigures {
  /** Messages of the measured run the server stored. */
  readonly messages: number
  /** Payload bytes of each message: as the consumer read them back (e2e), else as handed to the client. */
  readonly messageBytes: number
  /** Messages of the warm-up the server stored (0 without one). */
  readonly warmupMessages: number
  readonly storage: PeerStorage
  /** Payload MB/s from the first publish to the last reply (`publishMBps`, under cxlog's older name). */
  readonly throughputMBps: number
  readonly publishMBps: number
  /** e2e: payload MB/s from the first publish to the consumer's reading of the last message. */
  readonly e2eMBps?: number
  /** Each message's, from the call handing it to the client to its reply. */
  readonly ackLatencyP50Us: number
  readonly ackLatencyP99Us: number
  readonly cpuSecondsPerGiB: PeerCpu
  /** e2e: every message read back once, in order, intact. */
  readonly auditPassed?: boolean
  /** e2e: the consumer's process (not this one). */
  readonly consumerPid?: number
}

/** One run's state: what was sent and acknowledged, and when. */
interface PeerRun {
  readonly client: PeerClient
  readonly workload: PeerWorkload
  readonly payloadBytes: number
  /** Every message's bytes after its stamp. */
  readonly template: Buffer
  /** Messages due per ms at the offered load (Infinity: as fast as the window allows). */
  readonly perMs: number
  /** Per message: when it was handed to the client, and its ACK latency (ms). */
  readonly sentAt: Float64Array
  readonly latencyMs: Float64Array
  readonly replies: PeerReplies
  started: number
  sent: number
  sentBytes: number
  acked: number
  ackedAt: number
  /** The last send stopped at the window with messages due: a reply sends more. */
  blocked: boolean
  pumpScheduled: boolean
  failure: string | undefined
  /** Resumes the run's wait once it is done or failed. */
  settle: () => void
}

const makeRun = (client: PeerClient, workload: PeerWorkload): PeerRun => {
  const payloadBytes = payloadBytesOf(workload.messageBytes)
  const run: PeerRun = {
    client,
    workload,
    payloadBytes,
    template: payloadTemplate(payloadBytes),
    perMs: workload.type === "latency" ? (workload.rateMBps * 1e6) / payloadBytes / 1000 : Infinity,
    sentAt: new Float64Array(workload.messages),
    latencyMs: new Float64Array(workload.messages),
    replies: { acked: (index) => ackOne(run, index), failed: (reason) => failRun(run, reason) },
    started: 0,
    sent: 0,
    sentBytes: 0,
    acked: 0,
    ackedAt: 0,
    blocked: false,
    pumpScheduled: false,
    failure: undefined,
    settle: () => {}
  }
  return run
}

const failRun = (run: PeerRun, reason: string) => {
  run.failure ??= reason
  run.settle()
}

/** Sends every message due that the window has room for, as one batch with one send time. */
const pump = (run: PeerRun) => {
  run.pumpScheduled = false
  const { messages } = run.workload
  const now = performance.now()
  const due = run.perMs === Infinity ? messages : Math.min(messages, Math.floor((now - run.started) * run.perMs) + 1)
  const upTo = Math.min(due, run.acked + run.client.window)
  run.blocked = upTo < due
  if (upTo <= run.sent || run.failure !== undefined) return
  const first = run.sent
  const count = upTo - first
  const slab = Buffer.allocUnsafe(count * run.payloadBytes)
  const payloads = new Array<Buffer>(count)
  for (let i = 0; i < count; i++) {
    const at = i * run.payloadBytes
    run.template.copy(slab, at)
    slab.writeUInt32LE(first + i, at)
    payloads[i] = slab.subarray(at, at + run.payloadBytes)
    run.sentBytes += payloads[i]!.length
    run.sentAt[first + i] = now
  }
  run.sent = upTo
  run.client.send(first, payloads, run.replies)
}

const pumpLater = (run: PeerRun) => {
  if (run.pumpScheduled) return
  run.pumpScheduled = true
  // After this turn's other replies: one batch for all the room they free.
  setImmediate(() => pump(run))
}

const ackOne = (run: PeerRun, index: number) => {
  const now = performance.now()
  run.latencyMs[index] = now - run.sentAt[index]!
  run.acked++
  run.ackedAt = now
  if (run.acked === run.workload.messages) run.settle()
  else if (run.blocked) pumpLater(run)
}

/** Publishes the whole workload (paced or not) and resumes once every message is acknowledged, a send failed, or replies stalled for STALL_MS. */
const drive = (run: PeerRun) =>
  Effect.async<void, PeerFailed>((resume) => {
    const { messages } = run.workload
    let pacer: ReturnType<typeof setInterval> | undefined
    let watch: ReturnType<typeof setInterval> | undefined
    const stop = () => {
      clearInterval(pacer)
      clearInterval(watch)
      run.settle = () => {}
    }
    run.settle = () => {
      if (run.failure === undefined && run.acked < messages) return
      stop()
      resume(
        run.failure === undefined
          ? Effect.void
          : Effect.fail(new PeerFailed({ peer: run.client.peer, detail: run.failure }))
      )
    }
    run.started = performance.now()
    pump(run)
    if (run.perMs !== Infinity) pacer = setInterval(() => pump(run), 1)
    let progress = -1
    let quietMs = 0
    watch = setInterval(() => {
      quietMs = run.acked === progress ? quietMs + WATCH_MS : 0
      progress = run.acked
      if (quietMs >= STALL_MS) {
        failRun(run, `waiting for replies: ${run.acked} of ${messages} acknowledged, then nothing for ${STALL_MS} ms`)
      }
    }, WATCH_MS)
    // Nothing to send.
    run.settle()
    return Effect.sync(stop)
  })

const micros = (ms: number) => Math.round(ms * 1000)
const round = (n: number, places: number) => Math.round(n * 10 ** places) / 10 ** places

/** Runs `workload` on a peer, after its warm-up: its figures, or PeerFailed naming what it waited for. */
export const runPeerLoad = (client: PeerClient, workload: PeerWorkload): Effect.Effect<PeerFigures, PeerFailed> =>
  Effect.gen(function*() {
    const warmupMessages = workload.warmupMessages === 0
      ? 0
      : (yield* runOnce(client, { ...workload, messages: workload.warmupMessages })).messages
    return { ...(yield* runOnce(client, workload)), warmupMessages }
  })

const runOnce = (client: PeerClient, workload: PeerWorkload): Effect.Effect<PeerFigures, PeerFailed> =>
  Effect.gen(function*() {
    yield* client.reset
    const run = makeRun(client, workload)
    const e2e = workload.type === "e2e"
    const consumer = e2e ? yield* client.startConsumer(workload.messages, run.payloadBytes) : undefined
    const serverBefore = client.serverCpuSeconds() ?? 0
    const clientBefore = process.cpuUsage()
    yield* drive(run)
    const publishUsage = process.cpuUsage(clientBefore)
    const readBack = consumer === undefined ? undefined : yield* consumer.done
    const serverAfter = client.serverCpuSeconds() ?? serverBefore
    const stored = yield* client.stored
    const storage = yield* client.storage
    const gib = (workload.messages * run.payloadBytes) / 2 ** 30
    const server = (serverAfter - serverBefore) / gib
    const clientSeconds = ((publishUsage.user + publishUsage.system) / 1e6 + (readBack?.cpuSeconds ?? 0)) / gib
    const mBps = (ms: number) => round((workload.messages * run.payloadBytes) / 1e6 / (ms / 1000), 1)
    const startedAtMs = performance.timeOrigin + run.started
    const sorted = run.latencyMs.sort()
    const publishMBps = mBps(run.ackedAt - run.started)
    return {
      messages: stored,
      messageBytes: readBack === undefined
        ? run.sentBytes / Math.max(run.sent, 1)
        : readBack.bytes / Math.max(readBack.read, 1),
      warmupMessages: 0,
      storage,
      throughputMBps: publishMBps,
      publishMBps,
      ackLatencyP50Us: micros(percentile(sorted, 50)),
      ackLatencyP99Us: micros(percentile(sorted, 99)),
      cpuSecondsPerGiB: {
        server: round(server, 2),
        client: round(clientSeconds, 2),
        total: round(server + clientSeconds, 2)
      },
      ...(readBack === undefined || consumer === undefined
        ? {}
        : {
          e2eMBps: readBack.completeAtMs === undefined ? 0 : mBps(readBack.completeAtMs - startedAtMs),
          auditPassed: readBack.misread === 0 && readBack.read === workload.messages,
          consumerPid: consumer.pid
        })
    }
  }).pipe(Effect.scoped)
