/**
 * The seam between the publisher's core and the ways it reaches the log: a link.
 *
 * The core (PublisherState.ts and the files over it: the ACK window, batching, each topic's
 * session and its epochs, resends, the unacknowledged ranges, stats and bounded waits) knows
 * the log only through the links it is given; everything about one way of reaching the log
 * stays in that link's own file. A broker over TCP (PublisherLinkTcp.ts: sockets, frames, TLS
 * and credentials, keep-alive, reconnecting with backoff) is one link per broker; a local
 * publisher on the region's host (PublisherLinkRegion.ts) is one link that appends each batch
 * into the region itself and reads its ACKs from the session lines there. Both carry the
 * sessions of every topic the publisher writes (one per topic, the topic's *lane*): the same
 * order modes, ACK levels, dedup and resend rules, since all of those live in the core and the log.
 *
 * What a link does:
 * - `open()` connects (a TCP connection and its handshake); `opened` says it is up, `down` that
 *   it failed.
 * - `openSession(lane, sessionEpoch)` opens a lane's session on the open link: registers a new
 *   one with the log (`undefined`: the log hands out the epoch; the core does so on one link,
 *   then attaches the others) or attaches to the one named; then `sessionOpened` names the
 *   epoch, or `sessionRefused` says the log refuses the topic (that lane fails, the others go
 *   on), or `sessionUnknown` that the session named is gone.
 * - `send`s a sealed batch of an open session under its seq in that session; `onWritten`
 *   says once when its bytes are handed off (at ACK level 0 that is its ACK) or dropped.
 * - reports ACKs: `acked` when a session's frontier moved (its batches below `count` are at
 *   ACK `level`), with the total orders it learnt of the batches it carried.
 * - reports `fenced` (a session ended at `committed`: the core registers a new one for the lane
 *   and replays the rest), `failed` (a refusal of the link itself that reopening cannot cure:
 *   the publisher fails with it) and `down` (it lost its connection and every session on it:
 *   the core sends what it carried through the other links).
 * - after `down`, retries on its own clock: once its backoff has passed it asks with `retry`,
 *   and the core opens it again.
 * - `closeSession` releases a session (the log lets it go once its batches are ordered),
 *   `dropSession` forgets one the log ended (a fence, a refusal), `close` drops the link (until
 *   the next `open`; `graceful`: after what was written); no event follows any of them.
 *
 * Everything runs on the one JS thread: events are plain synchronous calls (a link sets its
 * `state` before it reports), and a link reports only for its current connection (an event
 * naming another epoch than the lane's is stale and ignored there). These are hot paths: a
 * `send` per batch and an `acked` per ACK, so a link adds no Effect or closure of its own there.
 */
import type { BrokerRejected, PublishError } from "../../services/net/Publisher.js"
import type { SessionLimits } from "./Control.js"

/**
 * `idle`: neither open nor opening (`open` starts it); `backoff`: down, waiting before it asks
 * to `retry`; `opening`: on its way to `opened`; `open`: its lanes' sessions may be opened.
 */
export type LinkState = "idle" | "backoff" | "opening" | "open"

/** A topic's lane as a link sees it. */
export interface LaneRef {
  /** Its place in the publisher's lanes: how a link names it back in its events. */
  readonly index: number
  readonly topic: string
}

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
  /** Connects. */
  readonly open: () => void
  /** Opens the lane's session on the open link: registers a new one (`undefined`) or attaches to `sessionEpoch`. */
  readonly openSession: (lane: LaneRef, sessionEpoch: number | undefined) => void
  /** Sends `batch` of the lane's open session; `onWritten` runs exactly once, with an error when the bytes were dropped. */
  readonly send: (
    batch: LinkBatch,
    lane: LaneRef,
    sessionEpoch: number,
    onWritten: (error: Error | null | undefined) => void
  ) => void
  /** Ends the lane's session cleanly: the log releases it once its `batches` batches are ordered. */
  readonly closeSession: (lane: LaneRef, sessionEpoch: number, batches: number) => void
  /** Forgets the lane's session here (the log ended it: a fence, a refusal); nothing is sent. */
  readonly dropSession: (lane: LaneRef) => void
  /** Drops its connection and any retry pending; `graceful`: once what was written is sent (a CLOSE, say). */
  readonly close: (graceful?: boolean) => void
}

/** What links report to the core (PublisherSession.ts `linkEvents`). */
export interface PublisherLinkEvents {
  /** `link` is connected: lanes' sessions may be opened on it. */
  readonly opened: (link: PublisherLink) => void
  /** The lane's session `sessionEpoch` (the one it registered, or attached to) is open on `link`. */
  /** `limits`: the topic's batch and message limits where the link learned them. */
  readonly sessionOpened: (
    link: PublisherLink,
    lane: LaneRef,
    sessionEpoch: number,
    limits: SessionLimits
  ) => void
  /** The log refuses the lane's topic (unknown, deleted, forbidden, no session line free): that lane fails with `error`. */
  readonly sessionRefused: (link: PublisherLink, lane: LaneRef, error: BrokerRejected) => void
  /** The log no longer knows the lane's session (it ended and its record was reused). */
  readonly sessionUnknown: (link: PublisherLink, lane: LaneRef, detail: string) => void
  /**
   * The lane's session's batches below `count` are acknowledged at ACK `level` (below the
   * publisher's: ordered, on their way to the disk). `orders`: pairs (batch seq, total order of
   * its first message), f64 little-endian, of batches this link carried; a view valid during the call.
   */
  readonly acked: (
    link: PublisherLink,
    lane: LaneRef,
    sessionEpoch: number,
    count: number,
    orders: Uint8Array,
    level: number
  ) => void
  /** The lane's session ended at `committed` (a gap outlived the hold timeout, or it idled out). */
  readonly fenced: (lane: LaneRef, sessionEpoch: number, committed: number) => void
  /** A refusal that reopening cannot cure: the publisher fails with `error`. */
  readonly failed: (error: PublishError) => void
  /** `link` lost its connection and its sessions (it is `idle` now); whether it should retry (false: the publisher failed meanwhile). */
  readonly down: (link: PublisherLink, reason: string) => boolean
  /** `link` waited out its backoff: the core opens it again. */
  readonly retry: (link: PublisherLink) => void
}
