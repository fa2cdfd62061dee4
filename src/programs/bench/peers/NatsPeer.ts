/**
 * NATS JetStream as a bench reference: one `nats-server` of its own (NatsCluster.ts, size 1)
 * with a stream whose storage the bench's ACK level asks for — memory for ACK 0 and 1, file for
 * ACK 2 (fsynced at each write where the server can: `sync_interval: always`, nats-server 2.10
 * on; 2.9 fsyncs its files every 2 minutes, which the storage's detail then says) — and a
 * client of the @nats-io packages. A message is one `js.publish`; its acknowledgement is the
 * PubAck carrying its stream sequence.
 */
import {
  jetstream,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
  StorageType
} from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect, type Scope } from "effect"
import { NATS, type NatsNode, startNatsCluster } from "./NatsCluster.js"
import type { PeerStorage, StorageKind } from "./PeerLoad.js"
import { errorText, peerDataParent, PeerFailed, type PeerUnavailable } from "./PeerServer.js"

/** A JetStream request (a publish's PubAck, a stream's creation) unanswered this long fails. */
const REQUEST_TIMEOUT_MS = 10_000

export const NATS_STREAM = "cxlog-bench-peer"
export const NATS_SUBJECT = "cxlog.bench.peer"

export interface NatsServer {
  readonly node: NatsNode
  readonly js: JetStreamClient
  /** An empty stream, made anew (its sequence numbers start at 1 again). */
  readonly reset: Effect.Effect<void, PeerFailed>
  /** Messages the stream holds, as the server counts them. */
  readonly stored: Effect.Effect<number, PeerFailed>
  /** The stream's storage, as the server describes it. */
  readonly storage: Effect.Effect<PeerStorage, PeerFailed>
}

/** A JetStream call's promise as an Effect, bounded; its failure names what was waited for. */
export const natsCall = <A>(what: string, call: () => Promise<A>): Effect.Effect<A, PeerFailed> =>
  Effect.tryPromise({
    try: call,
    catch: (error) => new PeerFailed({ peer: NATS, detail: `${what}: ${errorText(error)}` })
  }).pipe(
    Effect.timeoutFail({
      duration: REQUEST_TIMEOUT_MS,
      onTimeout: () => new PeerFailed({ peer: NATS, detail: `${what}: no answer within ${REQUEST_TIMEOUT_MS} ms` })
    })
  )

const resetStream = (manager: JetStreamManager, storage: StorageKind) =>
  natsCall("making the stream anew", async () => {
    await manager.streams.delete(NATS_STREAM).catch(() => false)
    await manager.streams.add({
      name: NATS_STREAM,
      subjects: [NATS_SUBJECT],
      storage: storage === "memory" ? StorageType.Memory : StorageType.File
    })
  })

/** The stream's storage as its info gives it; `syncAlways`: the server fsyncs each write. */
const storageOf = (manager: JetStreamManager, syncAlways: boolean): Effect.Effect<PeerStorage, PeerFailed> =>
  Effect.map(
    natsCall("reading the stream's info", () => manager.streams.info(NATS_STREAM)),
    (info): PeerStorage =>
      info.config.storage === StorageType.Memory
        ? { kind: "memory", detail: "memory storage" }
        : {
          kind: "disk",
          detail: syncAlways
            ? "file storage, sync_interval: always (fsynced at each write)"
            : "file storage, fsynced every 2 min (this nats-server has no sync_interval: always)"
        }
  )

/** A NATS server of its own with JetStream, its stream made with `storage`, and a connected client; all end with the scope. */
export const startNats = (storage: StorageKind): Effect.Effect<NatsServer, PeerUnavailable | PeerFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const cluster = yield* startNatsCluster(1, { syncAlways: storage === "disk", parentDir: yield* peerDataParent })
    const nc = yield* Effect.acquireRelease(
      natsCall(
        "connecting",
        () => connect({ servers: [...cluster.urls], noAsyncTraces: true, timeout: REQUEST_TIMEOUT_MS })
      ),
      (c) => Effect.promise(() => c.close().catch(() => undefined))
    )
    const manager = yield* natsCall("opening JetStream", () => jetstreamManager(nc, { timeout: REQUEST_TIMEOUT_MS }))
    const reset = resetStream(manager, storage)
    yield* reset
    return {
      node: cluster.nodes[0]!,
      js: jetstream(nc, { timeout: REQUEST_TIMEOUT_MS }),
      reset,
      stored: Effect.map(
        natsCall("reading the stream's info", () => manager.streams.info(NATS_STREAM)),
        (info) => info.state.messages
      ),
      storage: storageOf(manager, cluster.syncAlways)
    }
  })

/** One `js.publish` of `payload`, resumed by its PubAck (a closed loop's round trip), on a memory stream (cxlog's rtt is ACK 1); the server and client end with the scope. */
export const natsPeer: Effect.Effect<
  { readonly append: (payload: Buffer) => Effect.Effect<void, PeerFailed> },
  PeerUnavailable | PeerFailed,
  Scope.Scope
> = Effect.map(
  startNats("memory"),
  ({ js }) => ({
    append: (payload) => Effect.asVoid(natsCall("a publish's PubAck", () => js.publish(NATS_SUBJECT, payload)))
  })
)
