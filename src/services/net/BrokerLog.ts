/**
 * BrokerLog: the shared log as one broker sees it — exactly what the TCP broker needs. It
 * appends received batches (waiting for space: backpressure) and reads per-session ACK
 * frontiers, and it can wait until those frontiers move. The live layer is a thin adapter
 * over the log core (Appender, AckTracker); `layerMemory` is a faithful in-process fake.
 */
import { Context, Data, type Effect } from "effect"
import type { SessionTableFull } from "../log/Appender.js"

export type { SessionTableFull }

/** What a publisher's batch header says; `payload` travels next to it. */
export interface BatchHeader {
  readonly clientId: number
  readonly sessionEpoch: number
  /** Per session (client id, session epoch): 0, 1, 2, … contiguous across all brokers. */
  readonly batchSeq: number
  readonly messageCount: number
  readonly payloadBytes: number
  /** crc32c of the payload, checked by the broker before `append`. */
  readonly crc32c: number
}

export interface TopicInfo {
  readonly name: string
  readonly order: 0 | 2 | 4 | 5
  readonly ackLevel: 0 | 1 | 2
}

/** ACK frontiers of one session, as counts: batches 0..n-1 are acknowledged. */
export interface SessionAcks {
  /** Level 1: batches 0..ordered-1 are in the total order (mode 0: written). */
  readonly ordered: number
  /** Level 2: replicated to RF copies (equal to `ordered` while RF = 1). */
  readonly replicated: number
  /**
   * The session takes no more batches (fenced, or released after closing or idling):
   * `ordered` is then its committed frontier and never moves again.
   */
  readonly fenced: boolean
  /** False when no session line holds the key (never registered, or released and reused). */
  readonly known: boolean
}

export interface BrokerLogShape {
  /** The broker slot this process owns. */
  readonly brokerId: number
  /** Looks a topic up (a handshake naming an unknown topic is refused). */
  readonly topic: (name: string) => Effect.Effect<TopicInfo, UnknownTopic>
  /**
   * Copies the payload (a view of a socket chunk; not retained after this returns) into the
   * log and commits the batch; waits for space, failing with `AppendTimeout`.
   */
  readonly append: (topic: string, header: BatchHeader, payload: Uint8Array) => Effect.Effect<void, UnknownTopic | AppendTimeout | LogCorrupt>
  /**
   * Like `append`, but `fill` writes the payload straight into the log's space for it (e.g.
   * gathering the socket chunks a batch arrived in); `fill` must not keep `dst`.
   */
  readonly appendWith: (topic: string, header: BatchHeader, fill: (dst: Uint8Array) => void) => Effect.Effect<void, UnknownTopic | AppendTimeout | LogCorrupt>
  /**
   * `appendWith` without waiting or an Effect (the receive path's fast path): `true` once
   * appended, `false` when it cannot append right now — call `appendWith`, which waits —
   * or the error.
   */
  readonly tryAppendWith: (topic: string, header: BatchHeader, fill: (dst: Uint8Array) => void) => boolean | UnknownTopic | LogCorrupt
  /** Registers a new session of `clientId`: the log hands out its epoch. */
  readonly registerSession: (topic: string, clientId: number) => Effect.Effect<number, UnknownTopic | SessionTableFull>
  /** The session sent batches 0..batches-1 and is done: it is released once they are ordered. */
  readonly closeSession: (topic: string, clientId: number, sessionEpoch: number, batches: number) => Effect.Effect<void, UnknownTopic | AppendTimeout | LogCorrupt>
  /** The session's frontiers now (read-only). */
  readonly sessionAcks: (topic: string, clientId: number, sessionEpoch: number) => Effect.Effect<SessionAcks, UnknownTopic | LogCorrupt>
  /**
   * A number that changes whenever a frontier of the topic may have moved (ordered,
   * replicated, fenced) or a duplicate was dropped (it is acknowledged again); compare it
   * with `awaitProgress`.
   */
  readonly progress: (topic: string) => number
  /** Resolves with the topic's progress once it differs from `seen`, or after `timeoutMs` (then it may equal `seen`). */
  readonly awaitProgress: (topic: string, seen: number, timeoutMs: number) => Effect.Effect<number>
}

export class BrokerLog extends Context.Tag("cxlog/BrokerLog")<BrokerLog, BrokerLogShape>() {}

export class UnknownTopic extends Data.TaggedError("UnknownTopic")<{ readonly topic: string }> {
  override get message() {
    return `unknown topic ${JSON.stringify(this.topic)}`
  }
}

export class AppendTimeout extends Data.TaggedError("AppendTimeout")<{ readonly topic: string; readonly waitedMs: number }> {
  override get message() {
    return `no room in topic ${this.topic}'s log for ${this.waitedMs} ms (the sequencer is not consuming)`
  }
}

export class LogCorrupt extends Data.TaggedError("LogCorrupt")<{ readonly reason: string }> {
  override get message() {
    return `the log is corrupt: ${this.reason}`
  }
}
