/**
 * The workload a bench runs on a reference system (Redis Streams, NATS JetStream) beside
 * cxlog's: the same count of same-sized messages, published from this process with at most
 * `window` requests awaiting their reply — as fast as that allows, or paced at an offered load
 * (what is due is sent each millisecond) — and, for e2e, read back by a consumer in this
 * process that checks every message arrives once, in order, by the sequence number stamped in
 * its first bytes. A message's ACK latency is its reply's arrival less its send. CPU: the
 * server's from /proc, the client's (publisher and consumer) from this process's own usage, as
 * nothing else runs here meanwhile (cxlog's roles are child processes). A `PeerClient` says how
 * one system sends, reads back and empties its stream.
 */
import { Effect, type Scope } from "effect"
import { percentile } from "../../Percentiles.js"
import { PeerFailed } from "./PeerServer.js"

/** Bytes of the sequence number (u32, little-endian) each message starts with. */
const STAMP_BYTES = 4
/** No reply and no message read back for this long fails the run rather than hang it. */
const STALL_MS = 30_000
const WATCH_MS = 500

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
  /** An empty stream for the next run, the last run's removed. */
  readonly reset: Effect.Effect<void, PeerFailed>
  /** Sends messages `first`, `first + 1`, … (`payloads`) together; each reply reaches `replies`. */
  readonly send: (first: number, payloads: ReadonlyArray<Buffer>, replies: PeerReplies) => void
  /** Reads the stream from its start, calling `received` per message in the stream's order; ready when this resumes, stopped when the scope closes. */
  readonly consume: (received: (payload: Uint8Array) => void, failed: (reason: string) => void) => Effect.Effect<void, PeerFailed, Scope.Scope>
}

export interface PeerCpu {
  readonly server: number
  readonly client: number
  readonly total: number
}

export interface PeerFigures {
  /** Payload MB/s to the last reply, or (e2e) to the last message read back. */
  readonly throughputMBps: number
  readonly ackLatencyP50Us: number
  readonly ackLatencyP99Us: number
  readonly cpuSecondsPerGiB: PeerCpu
  /** e2e: every message read back once, in order, intact. */
  readonly auditPassed?: boolean
  /** e2e: payload MB/s to the last reply (the publishing side alone). */
  readonly publishedMBps?: number
}

/** One run's state: what was sent, acknowledged and read back, and when. */
interface PeerRun {
  readonly client: PeerClient
  readonly workload: PeerWorkload
  readonly payloadBytes: number
  /** Every message's bytes after its stamp. */
  readonly template: Buffer
  /** Messages due per ms at the offered load (Infinity: as fast as the window allows). */
  readonly perMs: number
  /** Per message: when it was sent, and its ACK latency (ms). */
  readonly sentAt: Float64Array
  readonly latencyMs: Float64Array
  readonly replies: PeerReplies
  started: number
  sent: number
  acked: number
  ackedAt: number
  read: number
  readAt: number
  /** Messages read back out of place, of the wrong size or with other bytes. */
  misread: number
  /** The last send stopped at the window with messages due: a reply sends more. */
  blocked: boolean
  pumpScheduled: boolean
  failure: string | undefined
  /** Resumes the run's wait once it is done or failed. */
  settle: () => void
}

const makeRun = (client: PeerClient, workload: PeerWorkload): PeerRun => {
  const payloadBytes = Math.max(workload.messageBytes, STAMP_BYTES)
  const template = Buffer.alloc(payloadBytes)
  for (let i = STAMP_BYTES; i < payloadBytes; i++) template[i] = (i * 31) & 0xff
  const run: PeerRun = {
    client,
    workload,
    payloadBytes,
    template,
    perMs: workload.type === "latency" ? (workload.rateMBps * 1e6) / payloadBytes / 1000 : Infinity,
    sentAt: new Float64Array(workload.messages),
    latencyMs: new Float64Array(workload.messages),
    replies: { acked: (index) => ackOne(run, index), failed: (reason) => failRun(run, reason) },
    started: 0,
    sent: 0,
    acked: 0,
    ackedAt: 0,
    read: 0,
    readAt: 0,
    misread: 0,
    blocked: false,
    pumpScheduled: false,
    failure: undefined,
    settle: () => {}
  }
  return run
}

const done = (run: PeerRun) => run.acked === run.workload.messages && (run.workload.type !== "e2e" || run.read >= run.workload.messages)

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
  if (done(run)) run.settle()
  else if (run.blocked) pumpLater(run)
}

const readOne = (run: PeerRun, payload: Uint8Array) => {
  const bytes = run.payloadBytes
  const index = payload.length < STAMP_BYTES ? -1 : payload[0]! + (payload[1]! << 8) + (payload[2]! << 16) + payload[3]! * 2 ** 24
  if (index !== run.read || payload.length !== bytes || run.template.compare(payload, STAMP_BYTES, bytes, STAMP_BYTES, bytes) !== 0) run.misread++
  run.read++
  run.readAt = performance.now()
  if (done(run)) run.settle()
}

/** Publishes the whole workload (paced or not) and resumes once it is done, failed, or stalled for STALL_MS. */
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
      if (run.failure === undefined && !done(run)) return
      stop()
      resume(run.failure === undefined ? Effect.void : Effect.fail(new PeerFailed({ peer: run.client.peer, detail: run.failure })))
    }
    run.started = performance.now()
    pump(run)
    if (run.perMs !== Infinity) pacer = setInterval(() => pump(run), 1)
    let progress = -1
    let quietMs = 0
    watch = setInterval(() => {
      quietMs = run.acked + run.read === progress ? quietMs + WATCH_MS : 0
      progress = run.acked + run.read
      if (quietMs < STALL_MS) return
      const waitedFor = run.acked < messages ? "replies" : "the consumer"
      failRun(run, `waiting for ${waitedFor}: ${run.acked} of ${messages} acknowledged, ${run.read} read back, then nothing for ${STALL_MS} ms`)
    }, WATCH_MS)
    // A consumer that failed before the start, or nothing to send.
    run.settle()
    return Effect.sync(stop)
  })

const micros = (ms: number) => Math.round(ms * 1000)
const round = (n: number, places: number) => Math.round(n * 10 ** places) / 10 ** places

/** Runs `workload` on a peer, after its warm-up: its figures, or PeerFailed naming what it waited for. */
export const runPeerLoad = (client: PeerClient, workload: PeerWorkload): Effect.Effect<PeerFigures, PeerFailed> =>
  workload.warmupMessages === 0
    ? runOnce(client, workload)
    : Effect.zipRight(runOnce(client, { ...workload, messages: workload.warmupMessages }), runOnce(client, workload))

const runOnce = (client: PeerClient, workload: PeerWorkload): Effect.Effect<PeerFigures, PeerFailed> =>
  Effect.gen(function*() {
    yield* client.reset
    const run = makeRun(client, workload)
    if (workload.type === "e2e") yield* client.consume((payload) => readOne(run, payload), (reason) => failRun(run, reason))
    const serverBefore = client.serverCpuSeconds() ?? 0
    const clientBefore = process.cpuUsage()
    yield* drive(run)
    const clientUsage = process.cpuUsage(clientBefore)
    const gib = (workload.messages * workload.messageBytes) / 2 ** 30
    const server = ((client.serverCpuSeconds() ?? serverBefore) - serverBefore) / gib
    const clientSeconds = (clientUsage.user + clientUsage.system) / 1e6 / gib
    const mBps = (until: number) => round((workload.messages * workload.messageBytes) / 1e6 / ((until - run.started) / 1000), 1)
    const sorted = run.latencyMs.sort()
    const e2e = workload.type === "e2e"
    return {
      throughputMBps: mBps(e2e ? Math.max(run.ackedAt, run.readAt) : run.ackedAt),
      ackLatencyP50Us: micros(percentile(sorted, 50)),
      ackLatencyP99Us: micros(percentile(sorted, 99)),
      cpuSecondsPerGiB: { server: round(server, 2), client: round(clientSeconds, 2), total: round(server + clientSeconds, 2) },
      ...(e2e ? { auditPassed: run.misread === 0 && run.read === workload.messages, publishedMBps: mBps(run.ackedAt) } : {})
    }
  }).pipe(Effect.scoped)
