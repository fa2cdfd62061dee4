/**
 * NATS JetStream as a bench peer's `PeerClient` (the server and stream of NatsPeer.ts):
 * messages sent with `js.publish`, at most `window` PubAcks outstanding, each acknowledged by
 * its PubAck — whose stream sequence names the message, the stream being new — and read back
 * by an ordered consumer in a consumer process of its own (`natsReader`).
 */
import { jetstream } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect, type Scope } from "effect"
import { NATS } from "./NatsCluster.js"
import { NATS_STREAM, NATS_SUBJECT, natsCall, startNats } from "./NatsPeer.js"
import { spawnPeerConsumer } from "./PeerConsumerProcess.js"
import type { PeerClient, PeerReader, StorageKind } from "./PeerLoad.js"
import { errorText, type PeerFailed, type PeerUnavailable } from "./PeerServer.js"

/**
 * PubAcks awaited at once, at most. 128 to 1 024 gave the same MB/s (64 MiB publish: the
 * client's CPU is the bound) while ACK latency grew with the window.
 */
const NATS_WINDOW = 256
/** Messages an ordered consumer asks for at a time. */
const CONSUME_BATCH = 1_000
const REQUEST_TIMEOUT_MS = 10_000

/** A NATS server of its own (JetStream, its stream in `storage`) and a publishing client; both end with the scope. */
export const natsLoad = (storage: StorageKind): Effect.Effect<PeerClient, PeerUnavailable | PeerFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const { js, node, reset, storage: described, stored } = yield* startNats(storage)
    return {
      peer: NATS,
      window: NATS_WINDOW,
      serverCpuSeconds: node.cpuSeconds,
      storage: described,
      reset,
      stored,
      send: (_first, payloads, replies) => {
        // A new stream numbers messages from 1 in the order they were sent.
        const acked = (ack: { readonly seq: number }) => replies.acked(ack.seq - 1)
        const failed = (error: unknown) => replies.failed(`a publish's PubAck: ${errorText(error)}`)
        for (const payload of payloads) js.publish(NATS_SUBJECT, payload).then(acked, failed)
      },
      startConsumer: (messages, payloadBytes) => spawnPeerConsumer(NATS, node.url, NATS_STREAM, messages, payloadBytes)
    } satisfies PeerClient
  })

/**
 * The consumer process's reader: an ordered consumer of `stream` on the server at `url`, from
 * its start, each message's payload to `received` in the stream's order; reading once this
 * resumes, stopped when the scope closes.
 */
export const natsReader = (url: string, stream: string): PeerReader => (received, failed) =>
  Effect.gen(function*() {
    const nc = yield* Effect.acquireRelease(
      natsCall("connecting", () => connect({ servers: [url], noAsyncTraces: true, timeout: REQUEST_TIMEOUT_MS })),
      (c) => Effect.promise(() => c.close().catch(() => undefined))
    )
    const js = jetstream(nc, { timeout: REQUEST_TIMEOUT_MS })
    const consumer = yield* natsCall("creating an ordered consumer", () => js.consumers.get(stream))
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
