/**
 * The publisher over TCP broker connections (see services/Publisher.ts for the contract).
 * All state is plain mutable data touched from socket callbacks and fibers on the one JS
 * thread; per message the work is a timestamp and a copy into the batch buffer, per batch a seal (crc32c)
 * and one socket write of header and payload together (the pool leaves room for the header in front of each buffer). A message's path: `tryPublish` → the open batch →
 * `seal` → `dispatch` (`choose` a link) → `transmit` → the broker; back: an ACK frame →
 * `acknowledge` → `complete` → `afterProgress` (window room, waiters woken).
 *
 * Batching is self-clocking: a message that finds nothing in flight is sealed and sent at
 * once (at the end of the synchronous burst it came in, with whatever else that burst
 * published: a microtask, no timer); while batches are in flight, messages gather until the batch is full or an ACK frees
 * window room (`afterProgress` seals the open batch). `lingerMs` only bounds how long an open
 * batch may wait for that ACK while the window has room; its one timer runs only while such a
 * batch is open behind others, and carries over from batch to batch in a burst.
 */
import { Config, ConfigError, Effect, Either, FiberSet, Layer, Option, type Scope } from "effect"
import { randomInt } from "node:crypto"
import { publisherAckedBytes, publisherAckedMessages, publisherAckLatency, publisherBatches, publisherFenced, publisherResends } from "../../Metrics.js"
import {
  PublishAckTimeout,
  type BrokerLink,
  BrokerRejected,
  InvalidPublisherOptions,
  type MessageOptions,
  type MessageRange,
  MessageTooLarge,
  Publisher,
  PublisherClosed,
  type PublisherOptions,
  type PublisherShape,
  type PublishAck,
  type PublishError,
  BrokersUnreachable,
  DEFAULT_MAX_IN_FLIGHT_BATCHES
} from "../../services/net/Publisher.js"
import { BatchBuilder, BufferPool, encodeParts, firstRecordBytes, type MessageParts } from "./BatchPayload.js"
import {
  type BrokerAddress,
  type ClientConnection,
  type ConnectionClosed,
  formatAddress,
  openConnection,
  parseAddresses
} from "./ClientConnection.js"
import type { AckLevel } from "../../services/log/Topics.js"
import { fatalWireErrors, Hello, PROTOCOL_VERSION } from "./Control.js"
import { FRAME_HEADER_BYTES, FrameType, writeFrameHeader } from "./Frame.js"

/** ACK 2: ordered batches waiting for the disk may number this many times the send window… */
const ORDERED_WINDOW_FACTOR = 3
/**
 * …and at most this many: 12 MiB at 64 KiB batches, what keeps batches flowing through ordering
 * while the disk syncs (docs/durability.md); with the default 256-batch send window a factor
 * alone would keep 48 MiB waiting for a slow disk.
 */
const MAX_ORDERED_WINDOW = 192

interface Batch {
  /** Batch seq in the current epoch (renumbered when a fence opens the next one). */
  seq: number
  readonly payload: Uint8Array
  /** Its frame: the header's 32 bytes (stamped at each send), then `payload` (the same bytes, not a copy, for pooled buffers). */
  readonly frame: Buffer
  /** The pooled buffer under `payload`, given back once the batch is done and no write of it is pending. */
  readonly buffer: Uint8Array
  pendingWrites: number
  readonly messageCount: number
  /** Its first message's number in the order the publisher took them (`MessageRange`). */
  readonly firstMessage: number
  readonly crc32c: number
  /** The link it is outstanding on, or -1 while it waits for one. */
  link: number
  /** The link it was last sent to (its ACK is counted there). */
  lastLink: number
  sends: number
  readonly sealedAt: number
  done: boolean
  /** ACK 2: the log ordered it (a level-1 ACK said so); it waits for the disk outside the send window. */
  ordered: boolean
  /** Total order of its first message once an ACK named it (-1: not known). */
  firstOffset: number
  /** `publishAcked` calls waiting for this batch's ACK (undefined: none, the usual case). */
  ackWaiters: Array<AckWaiter> | undefined
}

/** One `publishAcked` message: its index in the batch and how to resume its caller. */
interface AckWaiter {
  readonly index: number
  readonly resume: (result: Either.Either<PublishAck, PublishError>) => void
}

/** A wait in progress, as the timer that bounds every wait sees it. */
interface Bounded {
  /** When it fails (performance.now() ms). */
  readonly expiresAt: () => number
  /** Fails it with its timeout. */
  readonly expire: () => void
}

interface Link {
  readonly index: number
  readonly name: string
  readonly address: BrokerAddress
  connection: ClientConnection | undefined
  ready: boolean
  sent: number
  acked: number
  failures: number
  /** Why its last connection ended (a broker's ERROR code, or what the client saw). */
  lastClose: ConnectionClosed["code"] | undefined
  /** What its last connection attempt or connection saw, in words. */
  lastReason: string | undefined
  retry: ReturnType<typeof setTimeout> | undefined
}

const LATENCY_SAMPLES = 1 << 16
/** Done batches dropped from the front of `unacked` at a time (at least). */
const TRIM_DONE_BATCHES = 64
const MAX_RECONNECT_DELAY_MS = 1_000
/** setTimeout's longest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1

const settingsOf = (options: PublisherOptions) => ({
  brokers: options.brokers,
  topic: options.topic,
  clientId: options.clientId ?? randomInt(0, 2 ** 32 - 1),
  ackLevel: options.ackLevel ?? 1,
  batchBytes: options.batchBytes ?? 64 << 10,
  lingerMs: options.lingerMs ?? 1,
  window: options.maxInFlightBatches ?? DEFAULT_MAX_IN_FLIGHT_BATCHES,
  maxBatchBytes: options.maxBatchBytes ?? 1 << 20,
  spread: options.spread ?? "round-robin",
  connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
  security: {
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    ...(options.insecure === undefined ? {} : { insecure: options.insecure }),
    ...(options.tls === undefined ? {} : { tls: options.tls })
  },
  ackTimeoutMs: options.ackTimeoutMs ?? 30_000,
  reconnectDelayMs: options.reconnectDelayMs ?? 25
})

const validate = (s: ReturnType<typeof settingsOf>): string | undefined => {
  const u32 = (n: number) => Number.isInteger(n) && n >= 0 && n < 2 ** 32
  if (s.brokers.length === 0) return "at least one broker address is needed"
  if (s.topic.length === 0) return "a topic is needed"
  if (!u32(s.clientId)) return "the client id is an unsigned 32-bit integer"
  if (!(s.ackTimeoutMs > 0)) return `ackTimeoutMs ${s.ackTimeoutMs} must be positive`
  if (!Number.isInteger(s.batchBytes) || s.batchBytes < 16 || s.batchBytes % 8 !== 0) return `batchBytes ${s.batchBytes} must be a multiple of 8, at least 16`
  if (s.batchBytes > s.maxBatchBytes) return `batchBytes ${s.batchBytes} exceeds maxBatchBytes ${s.maxBatchBytes}`
  if (!Number.isInteger(s.window) || s.window < 1) return `maxInFlightBatches ${s.window} must be at least 1`
  if (!(s.lingerMs >= 0)) return `lingerMs ${s.lingerMs} must not be negative`
  return undefined
}

/** A message of `bytes` (value, key and headers) too big for any batch: as the first of one, which also carries the batch's base timestamp. */
const messageTooLarge = (bytes: number, maxBatchBytes: number): MessageTooLarge | undefined =>
  firstRecordBytes(bytes) > maxBatchBytes ? new MessageTooLarge({ bytes, maxBatchBytes }) : undefined

/**
 * What a publisher made with `options` would refuse before sending anything: the options
 * themselves, or messages of `payloadBytes` carrying `message`'s key and headers. For a caller
 * that knows its messages before it starts one.
 */
export const refusal = (options: PublisherOptions, payloadBytes: number, message?: MessageOptions): InvalidPublisherOptions | MessageTooLarge | undefined => {
  const settings = settingsOf(options)
  const invalid = validate(settings)
  if (invalid !== undefined) return new InvalidPublisherOptions({ reason: invalid })
  return messageTooLarge(payloadBytes + (encodeParts(message)?.bytes ?? 0), settings.maxBatchBytes)
}

export const make = (options: PublisherOptions): Effect.Effect<PublisherShape, InvalidPublisherOptions, Scope.Scope> =>
  Effect.gen(function*() {
    const settings = settingsOf(options)
    const invalid = validate(settings)
    if (invalid !== undefined) return yield* new InvalidPublisherOptions({ reason: invalid })
    const { clientId, ackLevel, window, topic } = settings
    /** Runs what socket callbacks log as fibers of the publisher's scope. */
    const log = yield* FiberSet.makeRuntime<never>()

    /** The session's epoch once the log registered it (epoch 0 is never handed out). */
    let epoch: number | undefined
    /** The link whose HELLO is registering the session; the others connect once it is registered. */
    let registrar: Link | undefined
    let nextSeq = 0
    /**
     * ACK 2: batches the log ordered wait for the disk in a window of their own, so the send
     * window keeps batches moving through ordering meanwhile (they are still held for resend,
     * and a resend of one is a duplicate the log drops).
     */
    const orderedWindow = ackLevel === 2 ? Math.min(ORDERED_WINDOW_FACTOR * window, MAX_ORDERED_WINDOW) : 0
    const pool = new BufferPool(settings.batchBytes, window + orderedWindow + 2, FRAME_HEADER_BYTES)
    const builder = new BatchBuilder(pool)
    /** Sealed batches not yet done, in seq order from `head` (done ones are dropped from the front). */
    let unacked: Array<Batch> = []
    let head = 0
    /** Messages in sealed batches (the open batch's first message is numbered this). */
    let sealedMessages = 0
    /** Sealed batches not done and not ordered (the send window), and ordered ones waiting for the disk (ACK 2). */
    let inFlight = 0
    let orderedInFlight = 0
    /** A batch may be sealed: both windows have room. */
    const room = () => inFlight < window && (ackLevel !== 2 || orderedInFlight < orderedWindow)
    /** Batches waiting for a ready link. */
    let unrouted: Array<Batch> = []
    let roundRobin = 0
    let sticky = clientId % settings.brokers.length
    let failure: PublishError | undefined
    /**
     * The linger timer and when the open batch is due (performance.now() ms; Infinity: not
     * lingering). A seal leaves the timer running for the next batch, which moves the due
     * time: a burst of batches arms one timer, not a setTimeout and clearTimeout per batch.
     */
    let lingerTimer: ReturnType<typeof setTimeout> | undefined
    let lingerDue = Infinity
    /** `publishAcked` waiters of the open batch (they move to the batch when it seals). */
    let openAckWaiters: Array<AckWaiter> | undefined
    /**
     * Batches with ACK waiters that are done but whose offset is not known yet: the ACK frame
     * from the connection that carried them names it (or settles that it is unknown).
     */
    let awaitingOffset: Array<Batch> = []
    /** Sealed batches not done that carry ACK waiters: while none do and none await an offset, ACK payloads are not read. */
    let ackWaitingBatches = 0
    /** ACK 2: batches below this seq of the current epoch are ordered or done (an ordered ACK scans from here). */
    let orderedSeq = 0
    /** Waits for window room or a flush, each re-checked by every change (`notify`). */
    const waiters = new Set<() => void>()
    /** Every wait in progress, for the one timer that bounds them all (`bound`). */
    const bounded = new Set<Bounded>()
    let boundTimer: ReturnType<typeof setTimeout> | undefined
    let boundAt = Infinity
    /** When a batch was last completed (a wait for window room counts its bound from there). */
    let lastAckAt = 0
    const counts = { messages: 0, batches: 0, ackedBatches: 0, ackedMessages: 0, resends: 0, fences: 0 }
    const latencies = new Float64Array(LATENCY_SAMPLES)
    let latencyCount = 0
    const links: Array<Link> = settings.brokers.map((address, index) => ({
      index,
      name: `B${index}`,
      address,
      connection: undefined,
      ready: false,
      sent: 0,
      acked: 0,
      failures: 0,
      lastClose: undefined,
      lastReason: undefined,
      retry: undefined
    }))

    /** Wakes every wait; one that is ready withdraws itself (a Set's iteration tolerates that). */
    const notify = () => {
      if (waiters.size === 0) return
      for (const wake of waiters) wake()
    }

    /** Arms the bounds' timer for `at` (performance.now() ms) unless it fires sooner already. */
    const armBound = (at: number) => {
      if (boundTimer !== undefined && boundAt <= at) return
      clearTimeout(boundTimer)
      boundAt = at
      // Capped: Node fires a longer delay after 1 ms, which would re-arm every millisecond.
      boundTimer = setTimeout(expireBounds, Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(at - performance.now()))))
    }

    /** Fails the waits past their bound; the timer then waits for the nearest of the others. */
    function expireBounds() {
      boundTimer = undefined
      boundAt = Infinity
      const now = performance.now()
      let next = Infinity
      for (const wait of bounded) {
        const at = wait.expiresAt()
        if (at <= now) wait.expire()
        else next = Math.min(next, at)
      }
      if (next < Infinity) armBound(next)
    }

    /**
     * The one shape of every wait here (window room, a flush, a message's ACK): a callback wait
     * that `start` hooks up (handing it how to settle; returning how to unhook it), bounded by
     * `timeoutMs` from its start — or, with `restartOnAck`, from the last batch completed since.
     * No timer or fiber of its own: one timer bounds every wait (`armBound`), and it only holds
     * the process while a wait is in progress (a busy publisher waits once per ACK).
     */
    const boundedWait = <A>(
      timeoutMs: number,
      restartOnAck: boolean,
      start: (settle: (outcome: Effect.Effect<A, PublishError | PublishAckTimeout>) => void) => () => void
    ): Effect.Effect<A, PublishError | PublishAckTimeout> =>
      Effect.async<A, PublishError | PublishAckTimeout>((resume) => {
        const startedAt = performance.now()
        let unhook: (() => void) | undefined
        let ended = false
        const end = () => {
          ended = true
          unhook?.()
          unhook = undefined
          bounded.delete(wait)
          if (bounded.size === 0) boundTimer?.unref()
        }
        const wait: Bounded = {
          expiresAt: () => (restartOnAck && lastAckAt > startedAt ? lastAckAt : startedAt) + timeoutMs,
          expire: () => {
            end()
            resume(Effect.fail(ackTimeout(timeoutMs)))
          }
        }
        bounded.add(wait)
        if (bounded.size === 1) boundTimer?.ref()
        armBound(startedAt + timeoutMs)
        const stop = start((outcome) => {
          end()
          resume(outcome)
        })
        // A wait settled while starting must not leave its hook behind.
        if (ended) stop()
        else unhook = stop
        return Effect.sync(end)
      })

    const complete = (batch: Batch) => {
      batch.done = true
      if (batch.ordered) orderedInFlight--
      else inFlight--
      const link = links[batch.lastLink]
      if (link !== undefined) link.acked++
      lastAckAt = performance.now()
      const micros = (lastAckAt - batch.sealedAt) * 1000
      latencies[latencyCount++ % LATENCY_SAMPLES] = micros
      publisherAckLatency.unsafeUpdate(micros, [])
      publisherAckedMessages.unsafeUpdate(batch.messageCount, [])
      publisherAckedBytes.unsafeUpdate(batch.payload.byteLength, [])
      counts.ackedBatches++
      counts.ackedMessages += batch.messageCount
      if (batch.pendingWrites === 0) pool.give(batch.buffer)
      if (batch.ackWaiters !== undefined) {
        ackWaitingBatches--
        if (batch.firstOffset >= 0 || ackLevel === 0) settleAcks(batch)
        else awaitingOffset.push(batch)
      }
    }

    /** Resumes the batch's `publishAcked` callers with their offsets (undefined where not known). */
    const settleAcks = (batch: Batch) => {
      const waiting = batch.ackWaiters
      if (waiting === undefined) return
      batch.ackWaiters = undefined
      for (const waiter of waiting) {
        waiter.resume(Either.right({ offset: batch.firstOffset >= 0 ? batch.firstOffset + waiter.index : undefined }))
      }
    }

    /**
     * Done batches still waiting for their offset that no ACK can name any more (their
     * connection is gone, or their epoch ended): settled with what is known.
     */
    const settleAwaiting = (gone: (batch: Batch) => boolean) => {
      if (awaitingOffset.length === 0) return
      const keep: Array<Batch> = []
      for (const batch of awaitingOffset) {
        if (gone(batch)) settleAcks(batch)
        else keep.push(batch)
      }
      awaitingOffset = keep
    }

    /** The total orders an ACK frame names: pairs (batch seq, total order of its first message), little-endian f64. */
    const learnOffsets = (orders: Uint8Array) => {
      if (orders.length < 16 || unacked.length === 0 || (ackWaitingBatches === 0 && awaitingOffset.length === 0)) return
      const view = new DataView(orders.buffer, orders.byteOffset, orders.length)
      const base = unacked[0]!.seq
      for (let at = 0; at + 16 <= orders.length; at += 16) {
        const batch = unacked[view.getFloat64(at, true) - base]
        if (batch !== undefined) batch.firstOffset = view.getFloat64(at + 8, true)
      }
    }

    /**
     * Drops done batches from the front of `unacked` once they are most of it (amortised O(1) per
     * batch), keeping any whose offset an ACK may still name (`learnOffsets` finds them there).
     * From early on: a trim first run after TurboFan optimised `acknowledge` (which inlines this) deoptimised it.
     */
    const trim = () => {
      let from = head
      if (awaitingOffset.length > 0) {
        const base = unacked.length === 0 ? 0 : unacked[0]!.seq
        for (const batch of awaitingOffset) from = Math.min(from, batch.seq - base)
      }
      if (from >= TRIM_DONE_BATCHES && from * 2 > unacked.length) {
        unacked = unacked.slice(from)
        head -= from
      }
    }

    const afterProgress = () => {
      while (head < unacked.length && unacked[head]!.done) head++
      trim()
      // Self-clocking: an ACK that leaves window room sends what gathered meanwhile.
      if (builder.messageCount > 0 && room()) seal()
      notify()
    }

    /**
     * Level 0 completes batches one write callback at a time: handle them together once the
     * callbacks of this event-loop turn have run, so a waiting publisher wakes once for many.
     */
    let afterWritesScheduled = false
    const afterWritesSoon = () => {
      if (afterWritesScheduled) return
      afterWritesScheduled = true
      setImmediate(() => {
        afterWritesScheduled = false
        afterProgress()
      })
    }

    /**
     * Batches 0..count-1 of the current epoch are acknowledged; `link` sent the ACK (undefined:
     * a fence). Its ACK named the offsets of the batches it carried, so those it has not
     * named are not known.
     */
    const acknowledge = (count: number, link: number | undefined) => {
      let moved = false
      for (let i = head; i < unacked.length && unacked[i]!.seq < count; i++) {
        const batch = unacked[i]!
        if (!batch.done) {
          complete(batch)
          moved = true
        }
      }
      if (awaitingOffset.length > 0) {
        settleAwaiting((batch) => batch.firstOffset >= 0 || (batch.seq < count && (link === undefined || batch.lastLink === link)))
      }
      if (moved) afterProgress()
    }

    /** ACK 2: batches 0..count-1 of the current epoch are ordered; they leave the send window for the ordered one. */
    const acknowledgeOrdered = (count: number) => {
      if (count <= orderedSeq || unacked.length === 0) return
      let moved = false
      for (let i = Math.max(head, orderedSeq - unacked[0]!.seq); i < unacked.length && unacked[i]!.seq < count; i++) {
        const batch = unacked[i]!
        if (batch.done || batch.ordered) continue
        batch.ordered = true
        inFlight--
        orderedInFlight++
        moved = true
      }
      orderedSeq = count
      if (moved) afterProgress()
    }

    /** A ready link for the next batch (none before the session is registered). */
    const choose = (): Link | undefined => {
      if (epoch === undefined) return undefined
      const n = links.length
      for (let k = 0; k < n; k++) {
        const i = settings.spread === "sticky" ? (sticky + k) % n : (roundRobin + k) % n
        if (links[i]!.ready) {
          if (settings.spread === "sticky") sticky = i
          else roundRobin = i + 1
          return links[i]
        }
      }
      return undefined
    }

    const transmit = (link: Link, batch: Batch, sessionEpoch: number) => {
      batch.link = link.index
      batch.lastLink = link.index
      if (batch.sends++ > 0) {
        counts.resends++
        publisherResends.unsafeUpdate(1, [])
      }
      link.sent++
      batch.pendingWrites++
      const written = (error: Error | null | undefined) => {
        if (--batch.pendingWrites === 0 && batch.done) pool.give(batch.buffer)
        else if (ackLevel === 0 && !batch.done && error == null) {
          complete(batch)
          afterWritesSoon()
        }
      }
      // Rewriting the header is safe: a connection that still holds an earlier send of it is gone.
      writeFrameHeader(batch.frame, FrameType.BATCH, clientId, sessionEpoch, batch.seq, batch.messageCount, batch.payload.length, batch.crc32c)
      link.connection!.sendBatch(batch.frame, written)
    }

    const dispatch = (batch: Batch) => {
      const link = choose()
      if (link === undefined || epoch === undefined) {
        batch.link = -1
        unrouted.push(batch)
      } else {
        transmit(link, batch, epoch)
      }
    }

    const drainUnrouted = () => {
      if (unrouted.length === 0) return
      const waiting = unrouted.filter((batch) => !batch.done).sort((a, b) => a.seq - b.seq)
      unrouted = []
      for (const batch of waiting) dispatch(batch)
    }

    function seal() {
      lingerDue = Infinity
      const sealed = builder.seal()
      const batch: Batch = {
        seq: nextSeq++,
        payload: sealed.payload,
        frame: frameAround(sealed.payload, sealed.buffer),
        buffer: sealed.buffer,
        pendingWrites: 0,
        messageCount: sealed.messageCount,
        firstMessage: sealedMessages,
        crc32c: sealed.crc32c,
        link: -1,
        lastLink: -1,
        sends: 0,
        sealedAt: performance.now(),
        done: false,
        ordered: false,
        firstOffset: -1,
        ackWaiters: openAckWaiters
      }
      if (openAckWaiters !== undefined) ackWaitingBatches++
      openAckWaiters = undefined
      sealedMessages += sealed.messageCount
      unacked.push(batch)
      inFlight++
      counts.batches++
      publisherBatches.unsafeUpdate(1, [])
      dispatch(batch)
    }

    /**
     * A Buffer over the header room the pool left in front of `payload` and the payload; a batch
     * of its own for an oversized message has no such room and is copied behind a header.
     */
    const frameAround = (payload: Uint8Array, buffer: Uint8Array): Buffer => {
      if (pool.hasHeadroom(buffer) && payload.byteOffset === buffer.byteOffset) {
        return Buffer.from(payload.buffer, payload.byteOffset - FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + payload.length)
      }
      const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length)
      frame.set(payload, FRAME_HEADER_BYTES)
      return frame
    }

    /** The open batch waited `lingerMs` for an ACK: it goes now if the window has room, else with the next ACK (a later batch's due time: wait on). */
    const onLinger = () => {
      lingerTimer = undefined
      if (lingerDue === Infinity || builder.messageCount === 0) return
      const left = lingerDue - performance.now()
      // Whole milliseconds: Node keeps a timer list per distinct delay.
      if (left > 0) lingerTimer = setTimeout(onLinger, Math.ceil(left))
      else if (room()) seal()
    }

    const fail = (error: PublishError) => {
      if (failure !== undefined) return
      failure = error
      clearTimeout(lingerTimer)
      ackWaitingBatches = 0
      const failed = Either.left(error)
      const waiting = [openAckWaiters, ...awaitingOffset.map((b) => b.ackWaiters), ...unacked.slice(head).map((b) => b.ackWaiters)]
      for (const batch of [...awaitingOffset, ...unacked]) batch.ackWaiters = undefined
      awaitingOffset = []
      openAckWaiters = undefined
      for (const waiters of waiting) for (const waiter of waiters ?? []) waiter.resume(failed)
      clearTimeout(boundTimer)
      boundTimer = undefined
      for (const link of links) {
        clearTimeout(link.retry)
        link.connection?.close()
        link.connection = undefined
        link.ready = false
      }
      notify()
    }

    /**
     * Connects a link. Without a session, the first link to connect registers one (the log
     * hands out the epoch in its WELCOME) and the others attach to it once it exists.
     */
    const connectLink = (link: Link) => {
      link.retry = undefined
      if (failure !== undefined) return
      if (epoch === undefined) {
        if (registrar !== undefined && registrar !== link) return
        registrar = link
      }
      const hello = new Hello({
        protocol: PROTOCOL_VERSION,
        topic,
        clientId,
        ackLevel: ackLevel as AckLevel,
        ...(ackLevel === 2 ? { orderedAcks: true } : {}),
        ...(epoch === undefined ? {} : { sessionEpoch: epoch })
      })
      const where = `${link.name} ${formatAddress(link.address)}`
      const connection: ClientConnection = openConnection(link.address, hello, {
        onWelcome: (welcome) => {
          if (link.connection !== connection) return
          if (welcome.maxBatchBytes < settings.maxBatchBytes) {
            return fail(new BrokerRejected({
              broker: where,
              code: "oversized",
              detail: `the broker takes batches up to ${welcome.maxBatchBytes} bytes, the publisher's maxBatchBytes is ${settings.maxBatchBytes}`
            }))
          }
          link.ready = true
          link.failures = 0
          accepted = true
          if (epoch === undefined) registered(link, welcome.sessionEpoch)
          drainUnrouted()
        },
        onAck: (sessionEpoch, acked, orders, level) => {
          if (link.connection !== connection || sessionEpoch !== epoch) return
          if (level < ackLevel) return acknowledgeOrdered(acked)
          learnOffsets(orders)
          acknowledge(acked, link.index)
        },
        onFenced: (sessionEpoch, committed) => {
          if (link.connection === connection && sessionEpoch === epoch) fence(committed)
        },
        onBrokerError: (error) => {
          if (link.connection !== connection) return
          if (fatalWireErrors.has(error.code)) fail(new BrokerRejected({ broker: where, code: error.code, detail: error.message }))
          else if (error.code === "unknown-session") sessionLost(where, error.message)
        },
        onClosed: (reason, closed) => {
          if (link.connection === connection) linkDown(link, reason, closed)
        }
      }, settings.connectTimeoutMs, settings.security)
      link.connection = connection
    }

    /** The log registered the session on `link`: the other links attach to it now. */
    const registered = (link: Link, sessionEpoch: number) => {
      epoch = sessionEpoch
      registrar = undefined
      for (const other of links) {
        if (other === link || other.connection !== undefined) continue
        clearTimeout(other.retry)
        connectLink(other)
      }
    }

    /**
     * The broker no longer knows the session (it ended and its record was reused). With
     * nothing unacknowledged a new session carries on; otherwise whether those batches are
     * in the log cannot be known, and the publisher fails rather than guess.
     */
    const sessionLost = (where: string, detail: string) => {
      if (unacked.slice(head).some((batch) => !batch.done)) {
        return fail(new BrokerRejected({ broker: where, code: "unknown-session", detail }))
      }
      restartSession()
    }

    /** Drops every connection and registers a new session; batches waiting for a link go out under it. */
    const restartSession = () => {
      epoch = undefined
      orderedSeq = 0
      registrar = undefined
      for (const link of links) {
        clearTimeout(link.retry)
        link.retry = undefined
        link.connection?.close()
        link.connection = undefined
        link.ready = false
      }
      for (const link of links) connectLink(link)
    }

    /** Since when every broker refuses this publisher as one connection too many (undefined: not so). */
    let refusedSince: number | undefined

    /**
     * Every broker full of connections for longer than the connect timeout: fail with that
     * reason rather than wait for ACKs that cannot come. True when it failed.
     */
    const refusedEverywhere = (): boolean => {
      if (!links.every((l) => !l.ready && l.lastClose === "too-many-connections")) {
        refusedSince = undefined
        return false
      }
      refusedSince ??= performance.now()
      if (performance.now() - refusedSince < settings.connectTimeoutMs) return false
      fail(new BrokerRejected({
        broker: links.map((l) => `${l.name} ${formatAddress(l.address)}`).join(", "),
        code: "too-many-connections",
        detail: `every broker refused the connection for ${settings.connectTimeoutMs} ms: they serve their maximum of connections`
      }))
      return true
    }

    const startedAt = performance.now()
    /** Whether any broker ever accepted this publisher (before that, an unreachable cluster is an error, not a wait). */
    let accepted = false

    /**
     * No broker accepted the publisher in the connect timeout since it started: fail naming
     * each address rather than wait for a cluster that may never come. True when it failed.
     */
    const unreachableEverywhere = (): boolean => {
      if (accepted || performance.now() - startedAt < settings.connectTimeoutMs) return false
      fail(new BrokersUnreachable({
        timeoutMs: settings.connectTimeoutMs,
        brokers: links.map((l) => ({ address: formatAddress(l.address), reason: l.lastReason ?? "not tried yet" }))
      }))
      return true
    }

    /** A connection failed: its outstanding batches go to the other links now; this one reconnects after a backoff. */
    const linkDown = (link: Link, reason: string, closed: ConnectionClosed) => {
      const code = closed.code
      link.connection = undefined
      link.ready = false
      link.lastClose = code
      link.lastReason = `${code}: ${closed.detail}`
      // An idle close is routine: reconnect without backing off.
      if (code !== "idle-timeout") link.failures++
      log(Effect.logDebug(`publisher ${clientId}: ${link.name} ${formatAddress(link.address)} down: ${reason}`))
      for (let i = head; i < unacked.length; i++) {
        const batch = unacked[i]!
        if (!batch.done && batch.link === link.index) dispatch(batch)
      }
      // Done batches it carried whose offset it had not named yet: it never will.
      settleAwaiting((batch) => batch.lastLink === link.index)
      if (failure !== undefined) return
      if (registrar === link) {
        // Another link registers the session meanwhile, if one can.
        registrar = undefined
        const next = links.find((other) => other !== link && other.connection === undefined && other.retry === undefined)
        if (next !== undefined) connectLink(next)
      }
      if (refusedEverywhere() || unreachableEverywhere()) return
      const delay = link.failures === 0 ? 0 : Math.min(MAX_RECONNECT_DELAY_MS, settings.reconnectDelayMs * 2 ** (link.failures - 1))
      link.retry = setTimeout(() => connectLink(link), delay)
      link.retry.unref()
    }

    /**
     * The session ended at `committed` (fenced by a gap, or released after idling): register
     * a new session and replay the rest under it.
     */
    const fence = (committed: number) => {
      acknowledge(committed, undefined)
      counts.fences++
      publisherFenced.unsafeUpdate(1, [])
      const replay = unacked.slice(head).filter((batch) => !batch.done)
      log(Effect.logInfo(`publisher ${clientId}: session epoch ${epoch} ended at ${committed}; replaying ${replay.length} batches in a new session`))
      replay.forEach((batch, seq) => {
        batch.seq = seq
        batch.link = -1
        // Ordered in the old session means nothing in the new one (the fence covers what was ordered anyway).
        if (batch.ordered) {
          batch.ordered = false
          orderedInFlight--
          inFlight++
        }
      })
      unacked = replay
      head = 0
      orderedSeq = 0
      unrouted = [...replay]
      nextSeq = replay.length
      restartSession()
    }

    const tooLarge = (payload: Uint8Array, parts: MessageParts | undefined): MessageTooLarge | undefined =>
      messageTooLarge(payload.length + (parts === undefined ? 0 : parts.bytes), settings.maxBatchBytes)

    /** Takes a message published at `timestamp`, its key and headers encoded in `parts`. */
    const offer = (payload: Uint8Array, parts: MessageParts | undefined, timestamp: number): boolean | PublishError => {
      if (failure !== undefined) return failure
      const large = tooLarge(payload, parts)
      if (large !== undefined) return large
      if (!builder.fits(payload.length, parts === undefined ? 0 : parts.bytes, timestamp)) {
        if (!room()) return false
        seal()
      }
      builder.add(payload, timestamp, parts)
      counts.messages++
      // Nothing in flight: no ACK is coming to clock this batch out, so it goes now: at the end of
      // this synchronous burst (a microtask, no timer), so messages published together go together.
      if (inFlight + orderedInFlight === 0) {
        if (!burstSealQueued) {
          burstSealQueued = true
          queueMicrotask(sealBurst)
        }
      } else if (lingerDue === Infinity && room()) {
        // Only while the window has room: a full one is clocked by the ACK that frees it
        // (`afterProgress` seals), and a linger could not seal before that anyway.
        lingerDue = performance.now() + settings.lingerMs
        lingerTimer ??= setTimeout(onLinger, settings.lingerMs)
      }
      return true
    }

    let burstSealQueued = false
    /** Seals what a burst published while nothing was in flight (unless something sealed it meanwhile). */
    const sealBurst = () => {
      burstSealQueued = false
      if (failure === undefined && builder.messageCount > 0 && room()) seal()
    }

    const tryPublish = (payload: Uint8Array, message?: MessageOptions): boolean | PublishError => offer(payload, encodeParts(message), Date.now())

    /**
     * `offer` that also registers `resume` as the message's ACK waiter, with its index in
     * the batch it lands in (the waiters of the open batch move to it when it seals).
     */
    const publishAckedNow = (payload: Uint8Array, parts: MessageParts | undefined, timestamp: number, resume: AckWaiter["resume"]): boolean | PublishError => {
      if (failure !== undefined) return failure
      const large = tooLarge(payload, parts)
      if (large !== undefined) return large
      const fits = builder.fits(payload.length, parts === undefined ? 0 : parts.bytes, timestamp)
      if (!fits && !room()) return false
      // Registered before `offer`, which may seal the batch (taking its waiters along).
      const index = fits ? builder.messageCount : 0
      if (index === 0 && builder.messageCount > 0) seal()
      ;(openAckWaiters ??= []).push({ index, resume })
      return offer(payload, parts, timestamp)
    }

    const publishAcked = (payload: Uint8Array, message?: MessageOptions): Effect.Effect<PublishAck, PublishError | PublishAckTimeout> =>
      Effect.suspend(() => {
        // Stamped once, at publish: a wait for window room does not move it.
        const parts = encodeParts(message)
        const timestamp = Date.now()
        return Effect.suspend(function attempt(): Effect.Effect<PublishAck, PublishError | PublishAckTimeout> {
          let settled: Either.Either<PublishAck, PublishError> | undefined
          let resumeCaller: ((result: Either.Either<PublishAck, PublishError>) => void) | undefined
          const taken = publishAckedNow(payload, parts, timestamp, (result) => {
            settled = result
            resumeCaller?.(result)
          })
          if (taken === false) return Effect.zipRight(writable, Effect.suspend(attempt))
          if (taken !== true) return Effect.fail(taken)
          if (settled !== undefined) return settled
          return boundedWait<PublishAck>(settings.ackTimeoutMs, false, (settle) => {
            resumeCaller = settle
            return () => {
              resumeCaller = undefined
            }
          })
        })
      })

    const brokerCounts = (): ReadonlyArray<BrokerLink> =>
      links.map((link) => ({
        name: link.name,
        address: formatAddress(link.address),
        acked: link.acked,
        sent: link.sent,
        connected: link.ready,
        ...(link.ready || link.lastClose === undefined ? {} : { lastClose: link.lastClose })
      }))

    const outstanding = () => inFlight + orderedInFlight + (builder.messageCount > 0 ? 1 : 0)

    /** A wait for ACKs that outlived `timeoutMs`, naming each broker's counts. */
    const ackTimeout = (timeoutMs: number) => new PublishAckTimeout({ timeoutMs, outstanding: outstanding(), brokers: brokerCounts() })

    /**
     * Waits for window room; an ACK that completes a batch restarts the bound, so only a
     * window that stays full for `ackTimeoutMs` (the head or the brokers are gone) fails.
     */
    const awaitRoom = (ready: () => boolean): Effect.Effect<void, PublishError | PublishAckTimeout> =>
      Effect.suspend(() => {
        if (failure !== undefined) return Effect.fail(failure)
        if (ready()) return Effect.void
        return boundedWait<void>(settings.ackTimeoutMs, true, (settle) => wakeWhen(ready, settle))
      })

    /** Hooks a wait up to `notify`: it settles once the publisher failed or `ready()` holds. */
    const wakeWhen = (ready: () => boolean, settle: (outcome: Effect.Effect<void, PublishError>) => void) => {
      const wake = () => {
        if (failure !== undefined) settle(Effect.fail(failure))
        else if (ready()) settle(Effect.void)
      }
      waiters.add(wake)
      return () => {
        waiters.delete(wake)
      }
    }

    /** A batch may be sealed, or the open one is empty (a linger seal emptied it): any message is taken. */
    const writable: Effect.Effect<void, PublishError | PublishAckTimeout> = awaitRoom(() => room() || builder.messageCount === 0)

    const publish = (payload: Uint8Array, message?: MessageOptions): Effect.Effect<void, PublishError | PublishAckTimeout> =>
      Effect.suspend(() => {
        // Stamped once, at publish: a wait for window room does not move it.
        const parts = encodeParts(message)
        const timestamp = Date.now()
        return Effect.suspend(function attempt(): Effect.Effect<void, PublishError | PublishAckTimeout> {
          const taken = offer(payload, parts, timestamp)
          if (taken === true) return Effect.void
          if (taken !== false) return Effect.fail(taken)
          return Effect.zipRight(writable, Effect.suspend(attempt))
        })
      })

    /** Everything published is acknowledged (the open batch is sealed as soon as the window has room). */
    const flushed = () => {
      if (builder.messageCount > 0 && room()) seal()
      return builder.messageCount === 0 && inFlight + orderedInFlight === 0
    }

    /**
     * Until everything published is acknowledged, failing after `timeoutMs` (no sleeping fiber
     * per flush: a closed loop of publish and flush allocated ~50 KiB of fibers per round trip that way).
     */
    const flush = (timeoutMs: number): Effect.Effect<void, PublishError | PublishAckTimeout> =>
      Effect.suspend(() => {
        if (failure !== undefined) return Effect.fail(failure)
        if (flushed()) return Effect.void
        return boundedWait<void>(timeoutMs, false, (settle) => wakeWhen(flushed, settle))
      })

    /** Not-done batches are all in `unacked` from `head` on, in the order they were sealed (a fence's replay keeps it). */
    const unacknowledged = (): ReadonlyArray<MessageRange> => {
      const ranges: Array<{ from: number; count: number }> = []
      const add = (from: number, count: number) => {
        const last = ranges[ranges.length - 1]
        if (last !== undefined && last.from + last.count === from) last.count += count
        else ranges.push({ from, count })
      }
      for (let i = head; i < unacked.length; i++) {
        const batch = unacked[i]!
        if (!batch.done) add(batch.firstMessage, batch.messageCount)
      }
      if (builder.messageCount > 0) add(sealedMessages, builder.messageCount)
      return ranges
    }

    /**
     * Closing: the session is released at once (its CLOSE names how many batches it sent, so
     * the log releases it once those are ordered), not left to idle out.
     */
    const close = () => {
      const link = epoch === undefined ? undefined : links.find((candidate) => candidate.ready)
      if (link !== undefined && epoch !== undefined) {
        link.connection?.closeSession(epoch, nextSeq)
        link.connection = undefined
      }
      fail(new PublisherClosed())
    }

    yield* Effect.addFinalizer(() => Effect.sync(close))
    for (const link of links) connectLink(link)

    return {
      clientId,
      publish,
      publishAcked,
      tryPublish,
      writable,
      flush,
      stats: () => ({ clientId, sessionEpoch: epoch ?? 0, ...counts, inFlight: inFlight + orderedInFlight, brokers: brokerCounts() }),
      unacknowledged,
      ackLatencies: (since = 0) => {
        const from = Math.max(since, latencyCount - LATENCY_SAMPLES)
        const out = new Float64Array(Math.max(0, latencyCount - from))
        for (let i = from; i < latencyCount; i++) out[i - from] = latencies[i % LATENCY_SAMPLES]!
        return out
      }
    }
  })

export const layer = (options: PublisherOptions): Layer.Layer<Publisher, InvalidPublisherOptions> => Layer.scoped(Publisher, make(options))

/**
 * Options from `CXLOG_BROKERS` (`host:port,…`), `CXLOG_TOPIC`, `CXLOG_CLIENT_ID`,
 * `CXLOG_ACK_LEVEL` (1), `CXLOG_BATCH_BYTES` (65536), `CXLOG_LINGER_MS` (1),
 * `CXLOG_MAX_IN_FLIGHT` (64), `CXLOG_SPREAD` (round-robin | sticky).
 */
export const config: Config.Config<PublisherOptions> = Config.all({
  brokers: Config.string("CXLOG_BROKERS").pipe(
    Config.mapOrFail((text) => {
      try {
        return Either.right(parseAddresses(text))
      } catch (error) {
        return Either.left(ConfigError.InvalidData([], String(error)))
      }
    })
  ),
  topic: Config.string("CXLOG_TOPIC"),
  clientId: Config.integer("CXLOG_CLIENT_ID").pipe(Config.option),
  ackLevel: Config.literal(0, 1, 2)("CXLOG_ACK_LEVEL").pipe(Config.withDefault(1 as const)),
  batchBytes: Config.integer("CXLOG_BATCH_BYTES").pipe(Config.withDefault(64 << 10)),
  lingerMs: Config.number("CXLOG_LINGER_MS").pipe(Config.withDefault(1)),
  maxInFlightBatches: Config.integer("CXLOG_MAX_IN_FLIGHT").pipe(Config.withDefault(DEFAULT_MAX_IN_FLIGHT_BATCHES)),
  spread: Config.literal("round-robin", "sticky")("CXLOG_SPREAD").pipe(Config.withDefault("round-robin" as const))
}).pipe(
  Config.map(({ clientId, ...rest }): PublisherOptions => (Option.isSome(clientId) ? { ...rest, clientId: clientId.value } : rest))
)

export const layerConfig: Layer.Layer<Publisher, InvalidPublisherOptions | ConfigError.ConfigError> = Layer.scoped(
  Publisher,
  Effect.flatMap(config, make)
)
