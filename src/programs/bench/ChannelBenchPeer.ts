/**
 * The receiving side of `cxlog bench --type channel` (`cxlog channel-bench-peer CONFIG`): one
 * child process that reads every transport the bench measures — the channels by name, its
 * process.send channel and a Unix domain socket — stamps each latency value the moment it has
 * it decoded, and counts throughput values, telling the bench over process.send.
 */
import { Context, Effect, Layer } from "effect"
import { connect } from "node:net"
import { Channels } from "../../services/ipc/Channels.js"
import { benchChannels } from "./ChannelBenchRegion.js"
import {
  type FromPeer,
  LATENCY_CHANNEL,
  LatencyValue,
  monotonicUs,
  RAW_CHANNEL,
  RAW_LATENCY_CHANNEL,
  SizedValue,
  TAKE_LATENCY_CHANNEL,
  type ThroughputTransport,
  type ToPeer,
  TYPED_CHANNEL
} from "./ChannelBenchValues.js"

/** A process.send throughput run is acknowledged every this many values (the bench's window moves with it). */
export const ACK_EVERY = 256
/** How long one take waits before it is taken again (the bench may be busy with another transport). */
const TAKE_SLICE_MS = 60_000

interface PeerConfig {
  readonly region: string
  readonly socket: string
}

const decoder = new TextDecoder("utf-8", { ignoreBOM: true })

const tell = (message: FromPeer) => void process.send?.(message)

/**
 * Counts each throughput transport's values, telling the bench when a run's count is reached.
 * Every receiver reads the bytes of each value it is given (`touched`), so no transport is
 * measured without its reads; the counting is done once per delivery — a `process.send`
 * message, a raw batch, a typed value — as each transport's API hands values over, so the
 * bench's own bookkeeping weighs on no transport per value.
 */
const makeCounter = () => {
  const expected: Record<ThroughputTransport, number> = { raw: 0, rawBulk: 0, typed: 0, sendBytes: 0, sendValues: 0 }
  const counts: Record<ThroughputTransport, number> = { raw: 0, rawBulk: 0, typed: 0, sendBytes: 0, sendValues: 0 }
  let touched = 0
  return {
    arm: (transport: ThroughputTransport, count: number) => {
      expected[transport] = count
      counts[transport] = 0
      tell({ armed: transport })
    },
    /** `values` more of `transport` arrived, whose bytes read summed to `read`; the transport's count now. */
    count: (transport: ThroughputTransport, values: number, read: number) => {
      touched += read
      const before = counts[transport]
      const n = (counts[transport] = before + values)
      if (before < expected[transport] && n >= expected[transport]) tell({ done: transport, count: n })
      return n
    },
    touched: () => touched
  }
}

/** Newline-separated JSON from the Unix socket, each line handed on as it completes. */
const lines = (onLine: (line: string) => void) => {
  let pending = ""
  return (chunk: Buffer) => {
    pending += chunk.toString("utf8")
    let end = pending.indexOf("\n")
    while (end >= 0) {
      onLine(pending.slice(0, end))
      pending = pending.slice(end + 1)
      end = pending.indexOf("\n")
    }
  }
}

export const channelBenchPeer = (configText: string): Effect.Effect<void, unknown> =>
  Effect.scoped(Effect.gen(function*() {
    const config = JSON.parse(configText) as PeerConfig
    // The bench ends this process by killing it; losing the bench ends it too.
    process.on("disconnect", () => process.exit(0))
    const channels = Context.get(yield* Layer.build(benchChannels(config.region, "peer")), Channels)
    const counter = makeCounter()

    // Typed, handed over in the ring's wake-up (`consume`), and typed, taken (`take`) by a fiber.
    const latency = yield* (yield* channels.open(LATENCY_CHANNEL, LatencyValue)).subscribe
    yield* Effect.forkScoped(latency.consume(({ value }) => {
      tell({ ack: "channel", seq: value.seq, us: monotonicUs() - value.stampUs })
    }))
    const takeLatency = yield* (yield* channels.open(TAKE_LATENCY_CHANNEL, LatencyValue)).subscribe
    yield* Effect.forkScoped(Effect.forever(
      takeLatency.take(TAKE_SLICE_MS).pipe(
        Effect.map(({ value }) => tell({ ack: "channelTake", seq: value.seq, us: monotonicUs() - value.stampUs })),
        Effect.catchTag("ChannelTakeTimeout", () => Effect.void)
      )
    ))
    // The raw form of the same values: their JSON as bytes, read in place in the ring's wake-up.
    const rawLatency = yield* (yield* channels.openRaw(RAW_LATENCY_CHANNEL)).subscribe
    yield* Effect.forkScoped(rawLatency.consume((frame) => {
      const value = JSON.parse(decoder.decode(frame)) as LatencyValue
      tell({ ack: "rawChannel", seq: value.seq, us: monotonicUs() - value.stampUs })
    }))
    const typed = yield* (yield* channels.open(TYPED_CHANNEL, SizedValue)).subscribe
    // Handed over as the rings' wake-ups decode them (`consume`).
    yield* Effect.forkScoped(
      typed.consume(({ value }) => void counter.count("typed", 1, (value.seq & 1) + value.pad.length))
    )
    const raw = yield* (yield* channels.openRaw(RAW_CHANNEL)).subscribe
    // Both raw runs (`raw`, `rawBulk`) come through this channel, one at a time: the last armed is counted.
    let rawTransport: ThroughputTransport = "raw"
    // A batch per call, each frame read in place through the batch's offsets (the raw form's fastest read).
    yield* Effect.forkScoped(raw.consumeFrames(({ bytes, count, lengths, offsets }) => {
      let read = 0
      for (let i = 0; i < count; i++) {
        const at = offsets[i]!
        read += bytes[at]! + bytes[at + lengths[i]! - 1]!
      }
      counter.count(rawTransport, count, read)
    }))

    let sendTransport: ThroughputTransport = "sendBytes"
    process.on("message", (message: ToPeer) => {
      if (Array.isArray(message)) {
        let read = 0
        for (const item of message as ReadonlyArray<Uint8Array | SizedValue>) {
          read += item instanceof Uint8Array ? item[0]! + item[item.length - 1]! : (item.seq & 1) + item.pad.length
        }
        const n = counter.count(sendTransport, message.length, read)
        if (Math.floor(n / ACK_EVERY) > Math.floor((n - message.length) / ACK_EVERY)) tell({ received: n })
      } else if ("latency" in message) {
        const value = message.latency
        tell({ ack: "send", seq: value.seq, us: monotonicUs() - value.stampUs })
      } else if ("expect" in message) {
        if (message.expect === "sendBytes" || message.expect === "sendValues") sendTransport = message.expect
        if (message.expect === "raw" || message.expect === "rawBulk") rawTransport = message.expect
        counter.arm(message.expect, message.count)
      }
    })

    const socket = connect(config.socket)
    socket.setNoDelay(true)
    socket.on(
      "data",
      lines((line) => {
        const value = JSON.parse(line) as LatencyValue
        tell({ ack: "socket", seq: value.seq, us: monotonicUs() - value.stampUs })
      })
    )
    socket.on("error", (error) => tell({ error: `unix socket: ${error.message}` }))
    yield* Effect.addFinalizer(() => Effect.sync(() => socket.destroy()))
    yield* Effect.async<void>((resume) => void socket.once("connect", () => resume(Effect.void)))
    tell({ ready: true })
    yield* Effect.never
  }))
