/**
 * A peer's e2e consumer in a process of its own (`cxlog peer-consume`, PeerConsumerMain.ts), as
 * cxlog's subscriber is one: the bench forks it, waits until it reads, and takes its read-back
 * audit, its clock point and its CPU from its `done`.
 */
import { Effect, Schema, type Scope } from "effect"
import { spawnRole } from "../../run/Cluster.js"
import type { ReadBackResult } from "./PeerReadBack.js"
import { PeerFailed } from "./PeerServer.js"

/** What `cxlog peer-consume` tells the bench. */
export const PeerConsumerEvents = {
  /** Its consumer is reading (from the stream's start). */
  ready: Schema.Struct({ event: Schema.Literal("ready"), pid: Schema.Number }),
  done: Schema.Struct({
    event: Schema.Literal("done"),
    read: Schema.Number,
    bytes: Schema.Number,
    misread: Schema.Number,
    completeAtMs: Schema.optional(Schema.Number),
    /** Its CPU from `ready` to `done`. */
    cpuSeconds: Schema.Number
  })
}

export interface PeerConsumer {
  readonly pid: number
  /** Its audit once it read every message (or stalled: it then fails itself, naming what it read). */
  readonly done: Effect.Effect<ReadBackResult & { readonly cpuSeconds: number }, PeerFailed>
}

/** How long the consumer may take to start reading. */
const READY_MS = 30_000
/** A bound on a whole run's read-back (the consumer itself fails after a stall far shorter). */
const DONE_MS = 3_600_000

/** Forks `cxlog peer-consume PEER ADDRESS STREAM MESSAGES PAYLOAD_BYTES`, resumed once it reads; stopped when the scope closes. */
export const spawnPeerConsumer = (
  peer: string,
  address: string,
  stream: string,
  messages: number,
  payloadBytes: number
): Effect.Effect<PeerConsumer, PeerFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const role = yield* spawnRole(
      `${peer} consumer`,
      ["peer-consume", peer, address, stream, String(messages), String(payloadBytes)],
      {},
      PeerConsumerEvents
    )
    const asPeerFailed = (error: { readonly message: string }) =>
      new PeerFailed({ peer, detail: `its consumer process: ${error.message}` })
    const ready = yield* role.event("ready", READY_MS).pipe(Effect.mapError(asPeerFailed))
    return {
      pid: ready.pid,
      done: role.event("done", DONE_MS).pipe(
        Effect.map(({ bytes, completeAtMs, cpuSeconds, misread, read }) => ({
          read,
          bytes,
          misread,
          completeAtMs,
          cpuSeconds
        })),
        Effect.mapError(asPeerFailed)
      )
    }
  })
