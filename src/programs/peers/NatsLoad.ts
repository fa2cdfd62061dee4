/**
 * NATS JetStream as a bench peer's `PeerClient` (the server and stream of NatsPeer.ts):
 * messages sent with `js.publish`, at most `window` PubAcks outstanding, each acknowledged by
 * its PubAck — whose stream sequence names the message, the stream being new — and read back
 * by an ordered consumer.
 */
import { Effect, type Scope } from "effect"
import { NATS } from "./NatsCluster.js"
import { NATS_STREAM, NATS_SUBJECT, natsCall, startNats } from "./NatsPeer.js"
import type { PeerClient } from "./PeerLoad.js"
import { errorText, type PeerFailed, type PeerUnavailable } from "./PeerServer.js"

/**
 * PubAcks awaited at once, at most. 128 to 1 024 gave the same MB/s (64 MiB publish: the
 * client's CPU is the bound) while ACK latency grew with the window.
 */
const NATS_WINDOW = 256
/** Messages an ordered consumer asks for at a time. */
const CONSUME_BATCH = 1_000

/** A NATS server of its own (JetStream, file storage) and a connected client; both end with the scope. */
export const natsLoad: Effect.Effect<PeerClient, PeerUnavailable | PeerFailed, Scope.Scope> = Effect.gen(function*() {
  const { js, node, reset } = yield* startNats
  return {
    peer: NATS,
    window: NATS_WINDOW,
    serverCpuSeconds: node.cpuSeconds,
    reset,
    send: (_first, payloads, replies) => {
      // A new stream numbers messages from 1 in the order they were sent.
      const acked = (ack: { readonly seq: number }) => replies.acked(ack.seq - 1)
      const failed = (error: unknown) => replies.failed(`a publish's PubAck: ${errorText(error)}`)
      for (const payload of payloads) js.publish(NATS_SUBJECT, payload).then(acked, failed)
    },
    consume: (received, failed) =>
      Effect.gen(function*() {
        const consumer = yield* natsCall("creating an ordered consumer", () => js.consumers.get(NATS_STREAM))
        const messages = yield* Effect.acquireRelease(
          natsCall("starting the ordered consumer", () => consumer.consume({ max_messages: CONSUME_BATCH })),
          (m) => Effect.promise(() => m.close().catch(() => undefined))
        )
        let stopped = false
        yield* Effect.addFinalizer(() => Effect.sync(() => (stopped = true)))
        const readAll = async () => {
          for await (const m of messages) received(m.data)
        }
        readAll().catch((error: unknown) => stopped || failed(`reading the stream back: ${errorText(error)}`))
      })
  } satisfies PeerClient
})
