/**
 * What `cxlog bench --type channel` sends, and the messages between the bench and its peer:
 * the same values go through every transport, and both sides stamp with the same clock.
 */
import { Schema } from "effect"

/** A latency value: `stampUs` is the sender's clock just before it hands the value to the transport. */
export const LatencyValue = Schema.Struct({
  seq: Schema.Number,
  stampUs: Schema.Number,
  symbol: Schema.String,
  price: Schema.Number
})
export type LatencyValue = typeof LatencyValue.Type

/** A throughput value, whose JSON is VALUE_BYTES long (the typed form's frame). */
export const SizedValue = Schema.Struct({ seq: Schema.Number, symbol: Schema.String, pad: Schema.String })
export type SizedValue = typeof SizedValue.Type

export const VALUE_BYTES = 64

/** Value `seq` padded so its JSON is VALUE_BYTES long (seq below 10^9). */
export const sizedValue = (seq: number): SizedValue => {
  const bare = JSON.stringify({ seq, symbol: "ACME", pad: "" }).length
  return { seq, symbol: "ACME", pad: "x".repeat(Math.max(0, VALUE_BYTES - bare)) }
}

/**
 * The host's monotonic clock in µs. process.hrtime reads CLOCK_MONOTONIC, which every process
 * on the host shares, so a stamp taken in one process can be subtracted in another.
 */
export const monotonicUs = (): number => Number(process.hrtime.bigint()) / 1000

export const LATENCY_CHANNEL = "bench-latency"
export const TAKE_LATENCY_CHANNEL = "bench-latency-take"
export const TYPED_CHANNEL = "bench-values"
export const RAW_CHANNEL = "bench-frames"
export const RAW_LATENCY_CHANNEL = "bench-latency-raw"

/** `channel`: the typed form handed over by `consume`; `channelTake`: the same values taken by `take`. */
export type LatencyTransport = "channel" | "channelTake" | "rawChannel" | "send" | "socket"
/** `rawBulk`: the raw channel again, written BULK_BATCH frames a call (ChannelBench.ts). */
export type ThroughputTransport = "raw" | "rawBulk" | "typed" | "sendBytes" | "sendValues"

/** The bench's messages to its peer (over process.send). */
export type ToPeer =
  | { readonly latency: LatencyValue }
  | { readonly expect: ThroughputTransport; readonly count: number }
  | ReadonlyArray<Uint8Array | SizedValue>

/** The peer's messages to the bench: a latency value received, a throughput run armed or done, a window ack. */
export type FromPeer =
  | { readonly ack: LatencyTransport; readonly seq: number; readonly us: number }
  | { readonly armed: ThroughputTransport }
  | { readonly done: ThroughputTransport; readonly count: number }
  | { readonly received: number }
  | { readonly ready: true }
  | { readonly error: string }
