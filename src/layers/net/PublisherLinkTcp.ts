/**
 * Links to brokers over TCP (PublisherLink.ts is the seam): one per broker, each over one
 * connection at a time (ClientConnection.ts: HELLO and WELCOME, credentials, TLS, keep-alive,
 * frames) carrying the sessions of every topic the publisher writes, each under a session id of
 * the connection's (the client id field of its frames); sending a batch as a BATCH frame around
 * its payload (a burst's frames in one write), and reconnecting after a failure with a backoff. The links of a publisher also judge together when waiting
 * is pointless: every broker refusing it as a connection too many, or none ever reachable, for
 * longer than the connect timeout.
 */
import { BrokerRejected, BrokersUnreachable } from "../../services/net/Publisher.js"
import type { BufferPool } from "./BatchBuilder.js"
import { type BrokerAddress, formatAddress } from "./BrokerAddress.js"
import { type ClientConnection, type ConnectionClosed, openConnection } from "./ClientConnection.js"
import { fatalWireErrors, Hello, PROTOCOL_VERSION } from "./Control.js"
import { FRAME_HEADER_BYTES, FrameType, writeFrameHeader } from "./Frame.js"
import type { PublisherSettings } from "./PublisherDefaults.js"
import type { LaneRef, LinkBatch, LinkState, PublisherLink, PublisherLinkEvents } from "./PublisherLink.js"

/** Room a batch buffer keeps in front of its payload: a send writes the frame header there (one write, no copy). */
export const BATCH_HEADROOM_BYTES = FRAME_HEADER_BYTES

const MAX_RECONNECT_DELAY_MS = 1_000
/**
 * Connection attempts every broker may refuse outright (ECONNREFUSED: nothing listens there)
 * before a publisher no broker ever accepted fails, rather than wait out its connect timeout:
 * with the default backoff, about 0.2 s.
 */
export const REFUSED_ATTEMPTS = 4

/** What a publisher's TCP links share. */
interface TcpLinks {
  readonly settings: PublisherSettings
  readonly events: PublisherLinkEvents
  /** The batches' buffers (with `BATCH_HEADROOM_BYTES` in front of each). */
  readonly pool: BufferPool
  readonly links: Array<TcpLink>
  readonly startedAt: number
  /** Whether any broker ever accepted the publisher (before that, an unreachable cluster is an error, not a wait). */
  accepted: boolean
  /** Since when every broker refuses the publisher as one connection too many (undefined: not so). */
  refusedSince: number | undefined
}

class TcpLink implements PublisherLink {
  readonly name: string
  readonly address: string
  state: LinkState = "idle"
  connection: ClientConnection | undefined = undefined
  failures = 0
  /** Attempts in a row refused outright (nothing listening at its address). */
  refusals = 0
  /** Why its last connection ended (a broker's ERROR code, or what the client saw). */
  lastClose: ConnectionClosed["code"] | undefined = undefined
  /** What its last connection attempt or connection saw, in words. */
  lastReason: string | undefined = undefined
  retryTimer: ReturnType<typeof setTimeout> | undefined = undefined
  /** The connection's session id of each lane (by lane index; 0: none), and the lane of each id. */
  sessionIds: Array<number> = []
  readonly lanes = new Map<number, LaneRef>()
  /** The next session id on this connection (ids increase along a connection). */
  nextSessionId = 1

  constructor(readonly group: TcpLinks, readonly index: number, readonly broker: BrokerAddress) {
    this.name = `B${index}`
    this.address = formatAddress(broker)
  }

  open(): void {
    clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    this.state = "opening"
    this.forgetSessions()
    this.connection = connect(this)
  }

  openSession(lane: LaneRef, sessionEpoch: number | undefined): void {
    const sessionId = this.nextSessionId++
    this.sessionIds[lane.index] = sessionId
    this.lanes.set(sessionId, lane)
    this.connection!.openSession(sessionId, lane.topic, sessionEpoch)
  }

  send(
    batch: LinkBatch,
    lane: LaneRef,
    sessionEpoch: number,
    onWritten: (error: Error | null | undefined) => void
  ): void {
    const frame = frameAround(this.group.pool, batch.payload, batch.buffer)
    writeFrameHeader(
      frame,
      FrameType.BATCH,
      this.sessionIds[lane.index]!,
      sessionEpoch,
      batch.seq,
      batch.messageCount,
      batch.payload.length,
      batch.crc32c
    )
    this.connection!.sendBatch(frame, onWritten)
  }

  closeSession(lane: LaneRef, sessionEpoch: number, batches: number): void {
    const sessionId = this.sessionIds[lane.index]
    if (sessionId === undefined || sessionId === 0) return
    this.connection?.closeSession(sessionId, lane.topic, sessionEpoch, batches)
    this.dropSession(lane)
  }

  dropSession(lane: LaneRef): void {
    const sessionId = this.sessionIds[lane.index]
    if (sessionId === undefined || sessionId === 0) return
    this.sessionIds[lane.index] = 0
    this.lanes.delete(sessionId)
  }

  /** The lane of session `sessionId` of this connection, if it still has one. */
  laneOf(sessionId: number): LaneRef | undefined {
    return this.lanes.get(sessionId)
  }

  forgetSessions(): void {
    this.sessionIds = []
    this.lanes.clear()
    this.nextSessionId = 1
  }

  close(graceful = false): void {
    clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    if (graceful) this.connection?.end()
    else this.connection?.close()
    this.connection = undefined
    this.forgetSessions()
    this.state = "idle"
  }
}

/** One link per broker of `settings`, reporting to `events`; none opened yet. */
export const tcpLinks = (
  settings: PublisherSettings,
  events: PublisherLinkEvents,
  pool: BufferPool
): ReadonlyArray<PublisherLink> => {
  const group: TcpLinks = {
    settings,
    events,
    pool,
    links: [],
    startedAt: performance.now(),
    accepted: false,
    refusedSince: undefined
  }
  settings.brokers.forEach((address, index) => group.links.push(new TcpLink(group, index, address)))
  return group.links
}

/**
 * A Buffer over the header room the pool left in front of `payload` and the payload; a batch
 * of its own for an oversized message has no such room and is copied behind a header.
 * Rewriting the header at each send is safe: a connection that still holds an earlier send is gone.
 */
const frameAround = (pool: BufferPool, payload: Uint8Array, buffer: Uint8Array): Buffer => {
  if (pool.hasHeadroom(buffer) && payload.byteOffset === buffer.byteOffset) {
    return Buffer.from(payload.buffer, payload.byteOffset - FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + payload.length)
  }
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length)
  frame.set(payload, FRAME_HEADER_BYTES)
  return frame
}

/** A connection to the link's broker: its HELLO says who the publisher is; its sessions open once it is welcomed. */
const connect = (link: TcpLink): ClientConnection => {
  const { settings, events } = link.group
  const hello = new Hello({
    protocol: PROTOCOL_VERSION,
    clientId: settings.clientId,
    ackLevel: settings.ackLevel,
    ...(settings.ackLevel === 2 ? { orderedAcks: true } : {})
  })
  const where = `${link.name} ${link.address}`
  const connection: ClientConnection = openConnection(
    link.broker,
    hello,
    {
      onWelcome: (welcome) => {
        if (link.connection !== connection) return
        if (welcome.maxBatchBytes < settings.maxBatchBytes) {
          return events.failed(
            new BrokerRejected({
              broker: where,
              code: "oversized",
              detail:
                `the broker takes batches up to ${welcome.maxBatchBytes} bytes, the publisher's maxBatchBytes is ${settings.maxBatchBytes}`
            })
          )
        }
        link.state = "open"
        // A broker that takes the connection only to close it for the user's rate (rate-limited) is
        // backed off from all the same (up to a second): the count starts over after another close.
        if (link.lastClose !== "rate-limited") link.failures = 0
        link.group.accepted = true
        events.opened(link)
      },
      onSessionOpened: (sessionId, sessionEpoch, limits) => {
        const lane = link.connection === connection ? link.laneOf(sessionId) : undefined
        if (lane !== undefined) events.sessionOpened(link, lane, sessionEpoch, limits)
      },
      onSessionEnded: (sessionId, error) => {
        const lane = link.connection === connection ? link.laneOf(sessionId) : undefined
        if (lane === undefined) return
        link.dropSession(lane)
        if (error.code === "unknown-session") return events.sessionUnknown(link, lane, error.message)
        events.sessionRefused(
          link,
          lane,
          new BrokerRejected({ broker: where, code: error.code, detail: error.message, topic: lane.topic })
        )
      },
      onAck: (sessionId, sessionEpoch, acked, orders, level) => {
        const lane = link.connection === connection ? link.laneOf(sessionId) : undefined
        if (lane !== undefined) events.acked(link, lane, sessionEpoch, acked, orders, level)
      },
      onFenced: (sessionId, sessionEpoch, committed) => {
        const lane = link.connection === connection ? link.laneOf(sessionId) : undefined
        if (lane !== undefined) events.fenced(lane, sessionEpoch, committed)
      },
      onBrokerError: (error) => {
        if (link.connection === connection && fatalWireErrors.has(error.code)) {
          events.failed(new BrokerRejected({ broker: where, code: error.code, detail: error.message }))
        }
      },
      onClosed: (reason, closed) => {
        if (link.connection === connection) connectionClosed(link, reason, closed)
      }
    },
    settings.connectTimeoutMs,
    settings.security
  )
  return connection
}

/** The link's connection failed: the core resends what it carried; the link reconnects after a backoff. */
const connectionClosed = (link: TcpLink, reason: string, closed: ConnectionClosed) => {
  const { group } = link
  const code = closed.code
  link.connection = undefined
  link.forgetSessions()
  link.state = "idle"
  link.lastClose = code
  link.lastReason = `${code}: ${closed.detail}`
  // An idle close is routine: reconnect without backing off.
  if (code !== "idle-timeout") link.failures++
  link.refusals = code === "unreachable" && closed.detail.includes("ECONNREFUSED") ? link.refusals + 1 : 0
  if (!group.events.down(link, reason)) return
  if (refusedEverywhere(group) || unreachableEverywhere(group)) return
  const delay = link.failures === 0
    ? 0
    : Math.min(MAX_RECONNECT_DELAY_MS, group.settings.reconnectDelayMs * 2 ** (link.failures - 1))
  link.state = "backoff"
  link.retryTimer = setTimeout(() => {
    link.retryTimer = undefined
    link.state = "idle"
    group.events.retry(link)
  }, delay)
  link.retryTimer.unref()
}

/**
 * Every broker full of connections for longer than the connect timeout: fail with that
 * reason rather than wait for ACKs that cannot come. True when it failed.
 */
const refusedEverywhere = (group: TcpLinks): boolean => {
  if (!group.links.every((l) => l.state !== "open" && l.lastClose === "too-many-connections")) {
    group.refusedSince = undefined
    return false
  }
  group.refusedSince ??= performance.now()
  if (performance.now() - group.refusedSince < group.settings.connectTimeoutMs) return false
  group.events.failed(
    new BrokerRejected({
      broker: group.links.map((l) => `${l.name} ${l.address}`).join(", "),
      code: "too-many-connections",
      detail: `every broker refused the connection for ${group.settings.connectTimeoutMs} ms: ${
        // What the brokers said (the user's own limit, or theirs), each once.
        [...new Set(group.links.map((l) => (l.lastReason ?? "").replace(/^too-many-connections: /, "")))].join("; ")}`
    })
  )
  return true
}

/**
 * No broker accepted the publisher in the connect timeout since it started, or every one
 * refused REFUSED_ATTEMPTS attempts outright (nothing listens there): fail naming each address
 * rather than wait for a cluster that may never come. True when it failed.
 */
const unreachableEverywhere = (group: TcpLinks): boolean => {
  if (group.accepted) return false
  const refused = group.links.every((l) => l.refusals >= REFUSED_ATTEMPTS)
  if (!refused && performance.now() - group.startedAt < group.settings.connectTimeoutMs) return false
  group.events.failed(
    new BrokersUnreachable({
      timeoutMs: group.settings.connectTimeoutMs,
      brokers: group.links.map((l) => ({ address: l.address, reason: l.lastReason ?? "not tried yet" })),
      ...(refused ? { refusedAttempts: REFUSED_ATTEMPTS } : {})
    })
  )
  return true
}
