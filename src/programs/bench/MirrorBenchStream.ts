/**
 * The JetStream stream `cxlog bench --type mirror` copies its topic into, as the bench reads it:
 * when the stream stored a message and the MB/s between two, its state while a mirror fills it,
 * and the messages read back at the end with their audit against the region's own.
 */
import { jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { Chunk, Effect, Layer, Option, Stream } from "effect"
import { type MirroredMessage, readMirrored } from "../../layers/mirror/MirrorRecord.js"
import * as SubscriberLayers from "../../layers/net/Subscriber.js"
import { attachRegion, processSlot, reader } from "../../layers/Roles.js"
import { mirrorMessageId } from "../../services/mirror/Mirror.js"
import { Subscriber } from "../../services/net/Subscriber.js"
import type { RoleProcess } from "../run/Cluster.js"
import { errorText, PeerFailed } from "./peers/PeerServer.js"

/** The region's topic the bench publishes and mirrors. */
export const TOPIC = "m"
/** The stream the mirror copies it into. */
export const STREAM = "cxlog-bench"

/** A JetStream call of the bench that failed, with what it was doing (`detail`). */
export const failed = (detail: string) => (error: unknown) =>
  new PeerFailed({ peer: "nats", detail: `${detail}: ${errorText(error)}` })

/** Stored time (ms) of the stream's message `seq`. */
const storedAt = (nc: NatsConnection, seq: number) =>
  Effect.tryPromise({
    try: async () => {
      const m = await (await jetstreamManager(nc)).streams.getMessage(STREAM, { seq })
      if (m === null) throw new Error(`message ${seq} is not in the stream`)
      return m.time.getTime()
    },
    catch: failed(`reading message ${seq}`)
  })

/** MB/s of `count` messages of `bytes` stored between sequences `first` and `first + count − 1`. */
export const storedRate = (nc: NatsConnection, first: number, count: number, bytes: number) =>
  Effect.gen(function*() {
    const from = yield* storedAt(nc, first)
    const to = yield* storedAt(nc, first + count - 1)
    return (count * bytes) / 1e6 / (Math.max(1, to - from) / 1000)
  })

export const streamState = (nc: NatsConnection) =>
  Effect.tryPromise({
    try: async () => (await (await jetstreamManager(nc)).streams.info(STREAM)).state,
    catch: failed("stream info")
  })

export const awaitStreamLast = (nc: NatsConnection, messages: number, mirror: RoleProcess) =>
  Effect.gen(function*() {
    for (;;) {
      const state = yield* streamState(nc)
      if (state.messages >= messages) return state
      // Its failure, with what it said.
      if (mirror.child.exitCode !== null) return yield* mirror.exited
      yield* Effect.sleep(50)
    }
  })

/** A message read back, with when JetStream stored it (ms since the epoch). */
type StoredMessage = MirroredMessage & { readonly stored: number }

/** The stream's first `count` messages, decoded. */
export const readStream = (nc: NatsConnection, count: number) =>
  Effect.tryPromise({
    try: async () => {
      const out: Array<StoredMessage> = []
      const consumer = await jetstream(nc).consumers.get(STREAM)
      const messages = await consumer.consume({ max_messages: 2_000 })
      for await (const m of messages as AsyncIterable<JsMsg>) {
        out.push({ ...readMirrored(m), stored: m.info.timestampNanos / 1e6 })
        if (out.length === count) break
      }
      await messages.close()
      return out
    },
    catch: failed("reading the stream back")
  })

/** Step 7: offsets 0..count−1 once, in order, payloads equal to the region's. */
export const auditStream = (
  region: string,
  regionId: string,
  generation: number,
  stream: ReadonlyArray<MirroredMessage>,
  count: number
) =>
  Effect.gen(function*() {
    if (stream.length !== count) {
      return { passed: false, detail: `${stream.length} messages in the stream, ${count} expected` }
    }
    const subscriber = yield* Subscriber
    const subscription = yield* subscriber.subscribe(TOPIC, { from: 0 })
    const pull = yield* Stream.toPull(subscription.batches)
    let at = 0
    while (at < count) {
      const batch = yield* pull.pipe(
        Effect.map(Chunk.unsafeHead),
        Effect.mapError((e) => (Option.isSome(e) ? e.value : new Error("the subscription ended")))
      )
      for (const m of batch) {
        if (at >= count) break
        const s = stream[at]!
        const same = s.offset === m.offset && m.offset === at &&
          s.msgId === mirrorMessageId(regionId, TOPIC, generation, at) &&
          Buffer.from(s.payload).equals(Buffer.from(m.payload))
        if (!same) {
          return {
            passed: false,
            detail: `offset ${at}: the stream has offset ${s.offset}, id ${s.msgId}, ${s.payload.length} bytes`
          }
        }
        at++
      }
    }
    return { passed: true, detail: `${count} offsets once, in order, payloads equal` }
  }).pipe(
    Effect.scoped,
    Effect.provide(
      SubscriberLayers.layer.pipe(
        Layer.provide(
          reader.pipe(Layer.provideMerge(processSlot("client")), Layer.provideMerge(attachRegion({ name: region })))
        )
      )
    )
  )
