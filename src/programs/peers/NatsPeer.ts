/**
 * NATS JetStream as a bench reference: one `nats-server` of its own (NatsCluster.ts, size 1)
 * with a file-storage stream — the server's default sync: written to the OS at once, fsynced
 * on its interval — and a client of the @nats-io packages. A message is one `js.publish`; its
 * acknowledgement is the PubAck carrying its stream sequence.
 */
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect, type Scope } from "effect"
import { NATS, type NatsNode, startNatsCluster } from "./NatsCluster.js"
import { errorText, PeerFailed, type PeerUnavailable } from "./PeerServer.js"

/** A JetStream request (a publish's PubAck, a stream's creation) unanswered this long fails. */
const REQUEST_TIMEOUT_MS = 10_000

export const NATS_STREAM = "cxlog-bench-peer"
export const NATS_SUBJECT = "cxlog.bench.peer"

export interface NatsServer {
  readonly node: NatsNode
  readonly js: JetStreamClient
  /** An empty stream, made anew (its sequence numbers start at 1 again). */
  readonly reset: Effect.Effect<void, PeerFailed>
}

/** A JetStream call's promise as an Effect, bounded; its failure names what was waited for. */
export const natsCall = <A>(what: string, call: () => Promise<A>): Effect.Effect<A, PeerFailed> =>
  Effect.tryPromise({ try: call, catch: (error) => new PeerFailed({ peer: NATS, detail: `${what}: ${errorText(error)}` }) }).pipe(
    Effect.timeoutFail({ duration: REQUEST_TIMEOUT_MS, onTimeout: () => new PeerFailed({ peer: NATS, detail: `${what}: no answer within ${REQUEST_TIMEOUT_MS} ms` }) })
  )

const resetStream = (manager: JetStreamManager) =>
  natsCall("making the stream anew", async () => {
    await manager.streams.delete(NATS_STREAM).catch(() => false)
    await manager.streams.add({ name: NATS_STREAM, subjects: [NATS_SUBJECT], storage: StorageType.File })
  })

/** A NATS server of its own with JetStream, its stream made, and a connected client; all end with the scope. */
export const startNats: Effect.Effect<NatsServer, PeerUnavailable | PeerFailed, Scope.Scope> = Effect.gen(function*() {
  const cluster = yield* startNatsCluster(1)
  const nc = yield* Effect.acquireRelease(
    natsCall("connecting", () => connect({ servers: [...cluster.urls], noAsyncTraces: true, timeout: REQUEST_TIMEOUT_MS })),
    (c) => Effect.promise(() => c.close().catch(() => undefined))
  )
  const manager = yield* natsCall("opening JetStream", () => jetstreamManager(nc, { timeout: REQUEST_TIMEOUT_MS }))
  const reset = resetStream(manager)
  yield* reset
  return { node: cluster.nodes[0]!, js: jetstream(nc, { timeout: REQUEST_TIMEOUT_MS }), reset }
})

/** One `js.publish` of `payload`, resumed by its PubAck (a closed loop's round trip); the server and client end with the scope. */
export const natsPeer: Effect.Effect<{ readonly append: (payload: Buffer) => Effect.Effect<void, PeerFailed> }, PeerUnavailable | PeerFailed, Scope.Scope> = Effect.map(
  startNats,
  ({ js }) => ({ append: (payload) => Effect.asVoid(natsCall("a publish's PubAck", () => js.publish(NATS_SUBJECT, payload))) })
)
