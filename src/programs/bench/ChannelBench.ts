/**
 * `cxlog bench --type channel`: a channel by name between two processes, next to
 * `process.send` and a Unix domain socket measured in the same run, with the same values, the
 * same clock points and the same process shape: this process sends, one child process
 * (ChannelBenchPeer.ts) receives every transport.
 *
 * One way, one value at a time: the sender stamps a value with the host's monotonic clock
 * just before it hands it to the transport; the receiver stamps again the moment it has the
 * value decoded and reports the difference, acknowledging over process.send; the next value
 * is sent only after that acknowledgement. The transports take turns in blocks of BLOCK
 * values, so a burst of load on a shared machine weighs on all of them. `ratio` =
 * process.send p50 ÷ channel p50 (the typed form: Schema-encoded, decoded and handed to the
 * subscription's `consume` handler in the ring's wake-up); `takeRatio` the same over the typed
 * form taken by a fiber (`take`, through a second channel); `rawRatio` over the raw form
 * carrying the values' JSON, read in place.
 *
 * Throughput: VALUE_BYTES values through the channel's raw form (`tryWriteAll` of 32 frames, what
 * found no room handed to `writeAll`; read in place a batch at a time by `consumeFrames`:
 * THROUGHPUT_API) and its typed form
 * (Schema-encoded, `publishAll` of 32, handed to `consume`), next to
 * `process.send` batched like a ring commit (an array of 32 values per send, at most WINDOW
 * values ahead of the receiver's acknowledgements) of the same bytes and of the same values.
 * Each run twice, in turns; the figures are the means. `throughputRatio` = raw values/s ÷
 * batched process.send values/s of the bytes; `typedThroughputRatio` = typed ÷ batched
 * process.send of the values. The raw form is also run with BULK_BATCH frames per call
 * (`rawBulkValuesPerSec`): what larger commits give. It has no ratio: its reference would be
 * process.send of 1 024 values per send, which this bench does not run.
 */
import { Console, Effect } from "effect"
import type { ChildProcess } from "node:child_process"
import { availableParallelism } from "node:os"
import type { RawPublisher } from "../../services/ipc/Channels.js"
import { percentile } from "../report/Percentiles.js"
import { table } from "../report/Table.js"
import { ACK_TIMEOUT_MS, type Inbox, openSenders, type Senders } from "./ChannelBenchSenders.js"
import {
  type FromPeer,
  type LatencyTransport,
  LatencyValue,
  monotonicUs,
  SizedValue,
  sizedValue,
  type ThroughputTransport,
  type ToPeer,
  VALUE_BYTES
} from "./ChannelBenchValues.js"

export interface ChannelBenchOptions {
  /** One-way values measured per transport. */
  readonly samples: number
  /** Values per throughput run. */
  readonly values: number
  readonly json: boolean
}

const WARMUP = 1_000
const BLOCK = 100
/** Values per channel publishAll and per batched process.send: a ring commit's worth, as the rings bench batches. */
const BATCH = 32
/** Frames per call of the raw form's bulk run: what a writer with many values at hand commits at once. */
const BULK_BATCH = 1_024
/** Values a batched process.send may be ahead of the receiver's acknowledgements. */
const WINDOW = 1_024
const RUN_TIMEOUT_MS = 300_000
const THROUGHPUT_ROUNDS = 2
/** The throughput runs' order in each turn. */
const order: ReadonlyArray<ThroughputTransport> = ["raw", "rawBulk", "typed", "sendBytes", "sendValues"]
/** The raw form's calls the throughput figure measures: its fastest documented way to move small values. */
export const THROUGHPUT_API =
  `RawPublisher.tryWriteAll (${BATCH} frames a call; writeAll of those that found no room) -> RawSubscription.consumeFrames`

export const METHOD =
  "one child process receives every transport; the same values; stamps from CLOCK_MONOTONIC (process.hrtime, shared by the host's processes) " +
  "just before the send and just after the receiver has the value decoded; each value acknowledged over process.send before the next; " +
  `transports in turns of ${BLOCK}; process.send with advanced serialization; in throughput runs the receiver reads the first and last byte of ` +
  "every value of every transport and counts once per delivery (a raw batch, a process.send message, a typed value)"

const micros = (us: number) => Math.round(us * 10) / 10

const latencyOf = (samples: Float64Array) => {
  const sorted = Float64Array.from(samples).sort()
  return {
    p50: micros(percentile(sorted, 50)),
    p99: micros(percentile(sorted, 99)),
    p999: micros(percentile(sorted, 99.9))
  }
}

/** Sends `count` values BATCH to a process.send, at most WINDOW ahead of the peer's acknowledgements. */
const windowedSends = (
  child: ChildProcess,
  inbox: Inbox,
  batch: ReadonlyArray<Uint8Array | SizedValue>,
  count: number
) =>
  Effect.gen(function*() {
    const { window } = inbox
    window.received = 0
    for (let n = 0; n < count; n += BATCH) {
      if (n - window.received >= WINDOW) {
        yield* Effect.async<void>((resume) => {
          window.wake = () => resume(Effect.void)
        })
      }
      child.send(batch as ToPeer)
    }
  })

/**
 * Writes exactly `count` frames (one past it would be counted in the next run), `frames` a call
 * and fewer in the last: a call's frames that fit go at once (`tryWriteAll`), and only those
 * that found no room make an effect (`writeAll`, which waits for room).
 */
const rawWrites = (publisher: RawPublisher, frames: ReadonlyArray<Uint8Array>, count: number) =>
  Effect.gen(function*() {
    for (let n = 0; n < count; n += frames.length) {
      const call = count - n >= frames.length ? frames : frames.slice(0, count - n)
      const written = publisher.tryWriteAll(call)
      if (written < call.length) yield* publisher.writeAll(call.slice(written))
    }
  })

const mean = (values: ReadonlyArray<number>) => values.reduce((a, b) => a + b, 0) / values.length

/** The one-way runs' transports, in turn: the order of the latency samples. */
const latencyTransports: ReadonlyArray<LatencyTransport> = ["channel", "channelTake", "rawChannel", "send", "socket"]

/** `samples` one-way latencies (µs) of each transport, after a warm-up, in `latencyTransports`' order. */
const measureLatency = (senders: Senders, samples: number) =>
  Effect.gen(function*() {
    const { child, inbox, latencyPublisher, rawLatencyPublisher, socket, takeLatencyPublisher } = senders
    const encoder = new TextEncoder()

    // One way, one value at a time: stamped just before each transport's send.
    const valueOf = (seq: number): LatencyValue => ({ seq, stampUs: monotonicUs(), symbol: "ACME", price: 10.5 })
    const sends: Record<LatencyTransport, (seq: number) => Effect.Effect<unknown, unknown>> = {
      channel: (seq) => Effect.suspend(() => latencyPublisher.publish(valueOf(seq))),
      channelTake: (seq) => Effect.suspend(() => takeLatencyPublisher.publish(valueOf(seq))),
      rawChannel: (seq) =>
        Effect.suspend(() => rawLatencyPublisher.write(encoder.encode(JSON.stringify(valueOf(seq))))),
      send: (seq) => Effect.sync(() => child.send({ latency: valueOf(seq) })),
      socket: (seq) => Effect.sync(() => socket.write(`${JSON.stringify(valueOf(seq))}\n`))
    }
    let seq = 0
    const oneWay = (transport: LatencyTransport) =>
      Effect.suspend(() => {
        const n = ++seq
        return Effect.map(
          inbox.expect<Extract<FromPeer, { ack: LatencyTransport }>, unknown>(
            `ack:${transport}:${n}`,
            ACK_TIMEOUT_MS,
            sends[transport](n)
          ),
          (ack) => ack.us
        )
      })
    for (let i = 0; i < WARMUP; i++) for (const t of latencyTransports) yield* oneWay(t)
    const latency = latencyTransports.map(() => new Float64Array(samples))
    for (let done = 0; done < samples; done += BLOCK) {
      for (const [k, t] of latencyTransports.entries()) {
        for (let i = done; i < Math.min(samples, done + BLOCK); i++) latency[k]![i] = yield* oneWay(t)
      }
    }
    return latency
  })

/** Each throughput transport's values/s in `values`-value runs, THROUGHPUT_ROUNDS in turns, after a warm-up. */
const measureThroughput = (senders: Senders, values: number) =>
  Effect.gen(function*() {
    const { child, inbox, rawPublisher, typedPublisher } = senders
    // Throughput of VALUE_BYTES values: the raw and typed forms, and batched process.send of the same.
    const frames = Array.from({ length: BATCH }, (_, i) => new Uint8Array(VALUE_BYTES).fill(i + 1))
    const bulkFrames = Array.from({ length: BULK_BATCH }, (_, i) => frames[i % BATCH]!)
    const sized = Array.from({ length: BATCH }, (_, i) => sizedValue(i))
    const writers: Record<ThroughputTransport, (count: number) => Effect.Effect<unknown, unknown>> = {
      raw: (count) => rawWrites(rawPublisher, frames, count),
      rawBulk: (count) => rawWrites(rawPublisher, bulkFrames, count),
      typed: (count) =>
        Effect.gen(function*() {
          for (let n = 0; n < count; n += BATCH) yield* typedPublisher.publishAll(sized)
        }),
      sendBytes: (count) => windowedSends(child, inbox, frames, count),
      sendValues: (count) => windowedSends(child, inbox, sized, count)
    }
    const throughput = (transport: ThroughputTransport, count: number) =>
      Effect.gen(function*() {
        yield* inbox.expect(
          `armed:${transport}`,
          ACK_TIMEOUT_MS,
          Effect.sync(() => child.send({ expect: transport, count }))
        )
        const started = performance.now()
        yield* inbox.expect(`done:${transport}`, RUN_TIMEOUT_MS, writers[transport](count))
        return count / ((performance.now() - started) / 1000)
      })
    // A short run of each first, not counted: every path warmed before it is timed.
    for (const t of order) yield* throughput(t, Math.max(BATCH, Math.ceil(values / 10 / BATCH) * BATCH))
    const rates: Record<ThroughputTransport, Array<number>> = {
      raw: [],
      rawBulk: [],
      typed: [],
      sendBytes: [],
      sendValues: []
    }
    for (let round = 0; round < THROUGHPUT_ROUNDS; round++) {
      for (const t of order) rates[t].push(yield* throughput(t, values))
    }
    return rates
  })

/** Each transport's one-way figures (µs) from its samples. */
const oneWayFigures = (latency: ReadonlyArray<Float64Array>) => {
  const [channel, channelTake, rawChannel, send, socket] = latency.map(latencyOf) as [
    ReturnType<typeof latencyOf>,
    ReturnType<typeof latencyOf>,
    ReturnType<typeof latencyOf>,
    ReturnType<typeof latencyOf>,
    ReturnType<typeof latencyOf>
  ]
  return { channel, channelTake, rawChannel, send, socket }
}

type OneWayFigures = ReturnType<typeof oneWayFigures>

/** The bench's JSON line. */
const channelResult = (
  options: ChannelBenchOptions,
  values: number,
  { channel, channelTake, rawChannel, send, socket }: OneWayFigures,
  rates: Record<ThroughputTransport, Array<number>>
) => {
  const rate = (t: ThroughputTransport) => Math.round(mean(rates[t]))
  const round3 = (n: number) => Math.round(n * 1000) / 1000
  return {
    bench: "cxlog-channel",
    method: METHOD,
    samples: options.samples,
    valueBytes: VALUE_BYTES,
    values,
    cpus: availableParallelism(),
    oneWayP50Us: channel.p50,
    oneWayP99Us: channel.p99,
    oneWayP999Us: channel.p999,
    takeOneWayP50Us: channelTake.p50,
    takeOneWayP99Us: channelTake.p99,
    rawOneWayP50Us: rawChannel.p50,
    rawOneWayP99Us: rawChannel.p99,
    processSendP50Us: send.p50,
    processSendP99Us: send.p99,
    unixSocketP50Us: socket.p50,
    unixSocketP99Us: socket.p99,
    ratio: round3(send.p50 / channel.p50),
    takeRatio: round3(send.p50 / channelTake.p50),
    rawRatio: round3(send.p50 / rawChannel.p50),
    socketRatio: round3(socket.p50 / channel.p50),
    rawValuesPerSec: rate("raw"),
    typedValuesPerSec: rate("typed"),
    processSendBatchedBytesPerSec: rate("sendBytes"),
    processSendBatchedValuesPerSec: rate("sendValues"),
    throughputRatio: round3(rate("raw") / rate("sendBytes")),
    throughputApi: THROUGHPUT_API,
    rawBulkValuesPerSec: rate("rawBulk"),
    typedThroughputRatio: round3(rate("typed") / rate("sendValues")),
    // Each transport's runs in turn (values/s), whose means the figures above are: how far runs of one bench swing.
    throughputRuns: Object.fromEntries(order.map((t) => [t, rates[t].map(Math.round)]))
  }
}

/** The one-way table. */
const oneWayTable = ({ channel, channelTake, rawChannel, send, socket }: OneWayFigures): string =>
  table(["one way, one value at a time (same run, same values)", "p50 µs", "p99 µs", "p99.9 µs"], [
    ["channel by name (typed: Schema-encoded JSON, consume)", channel.p50, channel.p99, channel.p999],
    ["the same, taken by a fiber (take)", channelTake.p50, channelTake.p99, channelTake.p999],
    [
      "the same values' JSON through the raw form (read in place)",
      rawChannel.p50,
      rawChannel.p99,
      rawChannel.p999
    ],
    ["process.send (reference)", send.p50, send.p99, send.p999],
    ["Unix domain socket, JSON lines (reference)", socket.p50, socket.p99, socket.p999]
  ])

/** The throughput table. */
const throughputTable = (result: ReturnType<typeof channelResult>): string =>
  table([`${VALUE_BYTES} B values, one way (mean of ${THROUGHPUT_ROUNDS} runs)`, "values/s", "channel ÷ this"], [
    [
      `channel, raw form (writeAll of ${BATCH}, consumeFrames: a batch per call, read in place)`,
      result.rawValuesPerSec,
      1
    ],
    [`channel, raw form (writeAll of ${BULK_BATCH}, consumeFrames)`, result.rawBulkValuesPerSec, 1],
    [`channel, typed form (publishAll of ${BATCH}, consume)`, result.typedValuesPerSec, 1],
    [
      `process.send of the bytes, ${BATCH} per send (reference)`,
      result.processSendBatchedBytesPerSec,
      result.throughputRatio
    ],
    [
      `process.send of the values, ${BATCH} per send (reference)`,
      result.processSendBatchedValuesPerSec,
      result.typedThroughputRatio
    ]
  ])

export const channelBench = (options: ChannelBenchOptions) =>
  Effect.gen(function*() {
    const values = Math.ceil(options.values / BATCH) * BATCH
    const measured = yield* Effect.scoped(Effect.gen(function*() {
      const senders = yield* openSenders
      const latency = yield* measureLatency(senders, options.samples)
      const rates = yield* measureThroughput(senders, values)
      return { latency, rates }
    }))
    const oneWay = oneWayFigures(measured.latency)
    const result = channelResult(options, values, oneWay, measured.rates)
    if (!options.json) {
      yield* Console.log(oneWayTable(oneWay))
      yield* Console.log(throughputTable(result))
      yield* Console.log(METHOD)
    }
    yield* Console.log(JSON.stringify(result))
    return result
  })
