/**
 * The seam between the publisher's core and the ways it reaches the log: a link.
 *
 * The core (PublisherState.ts and the files over it: the ACK window, batching, sessions and
 * their epochs, resends, the unacknowledged ranges, stats and bounded waits) knows the log only
 * through the links it is given; everything about one way of reaching the log stays in that
 * link's own file. Today that is a broker over TCP (PublisherLinkTcp.ts: sockets, frames,
 * TLS and credentials, keep-alive, reconnecting with backoff), one link per broker. A local
 * publisher on the region's host (#32) is the same core over one link that appends each batch
 * into the region itself (its own participant line, Blog and PBR, as a broker does) and reads
 * its ACKs from the session frontiers there: the same sessions, order modes, ACK levels, dedup
 * and resend rules, since all of those live in the core and the log.
 *
 * What a link does:
 * - `open(sessionEpoch)`: registers a new session with the log (`undefined`: the log hands out
 *   the epoch; the core opens one link so, the others once it is known) or attaches to the one
 *   named; then `opened` names the epoch once batches may be sent, or `down` says it failed.
 * - `send`s a sealed batch of the open session under its seq in that session; `onWritten`
 *   says once when its bytes are handed off (at ACK level 0 that is its ACK) or dropped.
 * - reports ACKs: `acked` when the session's frontier moved (its batches below `count` are at
 *   ACK `level`), with the total orders it learnt of the batches it carried.
 * - reports `fenced` (the session ended at `committed`: the core registers a new one and
 *   replays the rest), `sessionUnknown` (the log forgot the session), `failed` (a refusal
 *   reopening cannot cure: the publisher fails with it) and `down` (it lost the session: the
 *   core sends what it carried through the other links).
 * - after `down`, retries on its own clock: once its backoff has passed it asks with `retry`,
 *   and the core opens it again when the session wants it (while another link registers the
 *   session, it waits as `idle` until the epoch is known).
 * - `closeSession` releases the session (the log lets it go once its batches are ordered) and
 *   `close` drops the link (until the next `open`); no event follows either.
 *
 * Everything runs on the one JS thread: events are plain synchronous calls (a link sets its
 * `state` before it reports), and a link reports only for its current connection (an event
 * naming another epoch than the core's is stale and ignored there). These are hot paths: a
 * `send` per batch and an `acked` per ACK, so a link adds no Effect or closure of its own there.
 */
import type { PublishError } from "../../services/net/Publisher.js"

/**
 * `idle`: neither open nor opening (`open` starts it); `backoff`: down, waiting before it asks
 * to `retry`; `opening`: on its way to `opened`; `open`: it takes batches.
 */
export type LinkState = "idle" | "backoff" | "opening" | "open"

/** A sealed batch as a link sends it. */
export interface LinkBatch {
  /** Its seq in the session it is sent under (batches of a session are numbered from 0). */
  readonly seq: number
  readonly payload: Uint8Array
  /** The pooled buffer under `payload` (a link may use the room the pool leaves in front of it). */
  readonly buffer: Uint8Array
  readonly messageCount: number
  readonly crc32c: number
}

export interface PublisherLink {
  /** Its place in the publisher's links: batches name the link they went to by it. */
  readonly index: number
  /** `B<index>` for brokers. */
  readonly name: string
  /** Where it goes, for stats and errors (`host:port`). */
  readonly address: string
  readonly state: LinkState
  /** While not open: why it last went down, in a word (a broker's ERROR code, or `unreachable`, `closed`, …). */
  readonly lastClose: string | undefined
  /** Opens the session on it: registers a new one (`undefined`) or attaches to `sessionEpoch`. */
  readonly open: (sessionEpoch: number | undefined) => void
  /** Sends `batch` (the link is `open`); `onWritten` runs exactly once, with an error when the bytes were dropped. */
  readonly send: (batch: LinkBatch, sessionEpoch: number, onWritten: (error: Error | null | undefined) => void) => void
  /** Ends the session cleanly: the log releases it once its `batches` batches are ordered. */
  readonly closeSession: (sessionEpoch: number, batches: number) => void
  /** Drops its connection and any retry pending. */
  readonly close: () => void
}

/** What links report to the core (PublisherSession.ts `linkEvents`). */
export interface PublisherLinkEvents {
  /** `link` is open on the session `sessionEpoch` (the one it registered, or attached to). */
  readonly opened: (link: PublisherLink, sessionEpoch: number) => void
  /**
   * The session's batches below `count` are acknowledged at ACK `level` (below the
   * publisher's: ordered, on their way to the disk). `orders`: pairs (batch seq, total order of
   * its first message), f64 little-endian, of batches this link carried; a view valid during the call.
   */
  readonly acked: (link: PublisherLink, sessionEpoch: number, count: number, orders: Uint8Array, level: number) => void
  /** The session ended at `committed` (a gap outlived the hold timeout, or it idled out). */
  readonly fenced: (sessionEpoch: number, committed: number) => void
  /** The log no longer knows the session (it ended and its record was reused). */
  readonly sessionUnknown: (link: PublisherLink, detail: string) => void
  /** A refusal that reopening cannot cure: the publisher fails with `error`. */
  readonly failed: (error: PublishError) => void
  /** `link` lost its session (it is `idle` now); whether it should retry (false: the publisher failed meanwhile). */
  readonly down: (link: PublisherLink, reason: string) => boolean
  /** `link` waited out its backoff: the core opens it again unless the session must wait for another link. */
  readonly retry: (link: PublisherLink) => void
}
