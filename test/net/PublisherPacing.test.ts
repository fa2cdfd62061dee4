/**
 * The adaptive send window (PublisherPacing.ts) in front of a fake log served at a fixed rate
 * behind fake links: a batch's ACK comes a base delay after its service, and it is served after
 * the queue ahead of it, so its delay grows with the queue. In virtual time (fake timers: every
 * run is the same), a publisher that publishes as fast as its window allows: the window
 * converges well below the cap, keeping the fixed window's throughput at a fraction of its ACK
 * latency; it never exceeds the cap; while one of two links is lost (its batches resent through
 * the other) it shrinks to the slower path, and returns to its size once the link is back; a
 * path that became slower for good is measured again at the next probe.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { vi } from "vitest"
import { makeWith } from "../../src/layers/net/Publisher.js"
import { settingsOf } from "../../src/layers/net/PublisherDefaults.js"
import type {
  LaneRef,
  LinkBatch,
  LinkState,
  PublisherLink,
  PublisherLinkEvents
} from "../../src/layers/net/PublisherLink.js"
import { linkEvents } from "../../src/layers/net/PublisherSession.js"
import type { PublisherShape } from "../../src/services/net/Publisher.js"

/** The log behind the links: each link's batches are served one per `serviceMs` in arrival order, and ACKed `baseMs` later (a test may lengthen it). */
interface Path {
  readonly serviceMs: number
  baseMs: number
}
/** Two links serving a batch per ms between them, ACKs 20 ms later: 21 batches in flight fill the path. */
const PATH: Readonly<Path> = { serviceMs: 2, baseMs: 20 }
/** A lost link goes silent this long before its connection is seen to close (a host gone: no reset). */
const SILENT_MS = 50
const NO_ORDERS = new Uint8Array(0)

/** The session's frontier in the log: the batches served without a gap. */
class FakeLog {
  readonly served: Array<boolean> = []
  frontier = 0

  serve(seq: number): number {
    this.served[seq] = true
    while (this.served[this.frontier] === true) this.frontier++
    return this.frontier
  }
}

/** A link to the fake log (a broker): it opens at once, serves what it is sent in order, and ACKs the frontier for its current connection only. */
class FakeLink implements PublisherLink {
  readonly name: string
  readonly address: string
  state: LinkState = "idle"
  lastClose: string | undefined = undefined
  /** Bumped when the link goes down: what it held and the ACKs it owed go with it. */
  connection = 0
  epoch = 0
  readonly queue: Array<number> = []
  serving = false
  /** Lost, not yet known to be: what it is sent goes nowhere. */
  silent = false

  constructor(
    readonly index: number,
    readonly log: FakeLog,
    readonly path: Path,
    readonly events: PublisherLinkEvents
  ) {
    this.name = `F${index}`
    this.address = `fake:${index}`
  }

  /** The one topic's lane, once its session is open here. */
  lane: LaneRef | undefined = undefined

  open() {
    if (this.state === "open") return
    this.state = "open"
    this.events.opened(this)
  }

  openSession(lane: LaneRef, sessionEpoch: number | undefined) {
    this.lane = lane
    this.epoch = sessionEpoch ?? 1
    this.events.sessionOpened(this, lane, this.epoch, {})
  }

  send(batch: LinkBatch, _lane: LaneRef, _sessionEpoch: number, onWritten: (error: Error | null | undefined) => void) {
    onWritten(null)
    if (this.silent) return
    this.queue.push(batch.seq)
    if (!this.serving) this.serveNext(this.connection)
  }

  dropSession() {
    this.lane = undefined
  }

  private serveNext(connection: number) {
    this.serving = true
    setTimeout(() => {
      if (connection !== this.connection) return
      const count = this.log.serve(this.queue.shift()!)
      setTimeout(() => {
        if (connection === this.connection && this.lane !== undefined) {
          this.events.acked(this, this.lane, this.epoch, count, NO_ORDERS, 1)
        }
      }, this.path.baseMs)
      if (this.queue.length > 0) this.serveNext(connection)
      else this.serving = false
    }, this.path.serviceMs)
  }

  /** Lost: it serves and ACKs nothing from now on, and SILENT_MS later its connection is seen to close; it waits in backoff until `back`. */
  lose() {
    this.close()
    this.state = "open"
    this.silent = true
    setTimeout(() => {
      this.silent = false
      this.state = "idle"
      this.lastClose = "lost"
      if (this.events.down(this, "lost")) this.state = "backoff"
    }, SILENT_MS)
  }

  /** Its backoff is over: it asks to be opened again. */
  back() {
    this.state = "idle"
    this.events.retry(this)
  }

  closeSession() {
    this.close()
  }

  close() {
    this.connection++
    this.queue.length = 0
    this.serving = false
    this.state = "idle"
  }
}

/** A publisher of two fake links over a fresh fake log, in virtual time from now on (real timers again when the scope closes). */
const fakePublisher = (options: { readonly cap: number; readonly adaptive: boolean; readonly path?: Path }) =>
  Effect.gen(function*() {
    yield* Effect.acquireRelease(
      Effect.sync(() => vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] })),
      () => Effect.sync(() => vi.useRealTimers())
    )
    const log = new FakeLog()
    const links: Array<FakeLink> = []
    const settings = settingsOf({
      brokers: [{ host: "fake", port: 1 }, { host: "fake", port: 2 }],
      topic: "t",
      clientId: 1,
      batchBytes: 1024,
      maxInFlightBatches: options.cap,
      adaptiveWindow: options.adaptive
    })
    const publisher = yield* makeWith(settings, 0, (s) => {
      const events = linkEvents(s)
      for (let i = 0; i < 2; i++) links.push(new FakeLink(i, log, options.path ?? { ...PATH }, events))
      return links
    })
    return { publisher, links }
  })

/** What a saturating publisher saw from `from` on (virtual ms): its windows, acknowledged batches per ms and mean ACK latency (ms). */
interface Span {
  readonly windows: ReadonlyArray<number>
  readonly batchesPerMs: number
  readonly meanAckMs: number
}

/**
 * Publishes as fast as the window allows, ACK by ACK in virtual time, until `batches` more
 * batches are acknowledged; `each` runs after every step. What it saw from `measureAfter` of them on.
 */
const saturate = (p: PublisherShape, batches: number, measureAfter = 0, each: () => void = () => {}): Span => {
  const message = new Uint8Array(100)
  const first = p.stats().ackedBatches
  let from: { at: number; acked: number } | undefined
  const windows: Array<number> = []
  for (;;) {
    while (p.tryPublish(message) === true) {
      // fill the window
    }
    vi.advanceTimersToNextTimer()
    each()
    const acked = p.stats().ackedBatches - first
    if (acked >= measureAfter) {
      from ??= { at: performance.now(), acked: p.stats().ackedBatches }
      windows.push(p.stats().window)
    }
    if (acked >= batches) break
  }
  const latencies = p.ackLatencies(from!.acked)
  return {
    windows,
    batchesPerMs: (p.stats().ackedBatches - from!.acked) / (performance.now() - from!.at),
    meanAckMs: latencies.reduce((sum, us) => sum + us, 0) / latencies.length / 1000
  }
}

const mean = (values: ReadonlyArray<number>) => values.reduce((sum, v) => sum + v, 0) / values.length

/** The windows' mean, once they stay within a tenth of it: converged, not oscillating. */
const converged = (windows: ReadonlyArray<number>) => {
  const size = mean(windows)
  expect(Math.max(...windows)).toBeLessThanOrEqual(size * 1.1)
  expect(Math.min(...windows)).toBeGreaterThanOrEqual(size * 0.9)
  return size
}

describe("the adaptive send window (fake links, virtual time)", () => {
  it.scoped("a saturating publisher's window converges well below the cap, with the fixed window's throughput at a fraction of its ACK latency", () =>
    Effect.gen(function*() {
      const fixed = yield* Effect.scoped(
        Effect.map(fakePublisher({ cap: 256, adaptive: false }), ({ publisher }) => saturate(publisher, 3_000, 1_000))
      )
      const adaptive = yield* Effect.scoped(
        Effect.map(fakePublisher({ cap: 256, adaptive: true }), ({ publisher }) => saturate(publisher, 3_000, 1_000))
      )
      expect(fixed.windows.every((w) => w === 256)).toBe(true)
      expect(converged(adaptive.windows)).toBeLessThan(256 / 2)
      // The log serves a batch per ms either way; the fixed window only queues more in front of it.
      expect(fixed.batchesPerMs).toBeGreaterThan(0.95 * (2 / PATH.serviceMs))
      expect(adaptive.batchesPerMs).toBeGreaterThanOrEqual(0.95 * fixed.batchesPerMs)
      expect(adaptive.meanAckMs).toBeLessThan(0.5 * fixed.meanAckMs)
    }))

  it.scoped("with a cap of 8 the window never exceeds 8, though the path holds 21 batches", () =>
    Effect.gen(function*() {
      const { publisher } = yield* fakePublisher({ cap: 8, adaptive: true })
      let most = 0
      const span = saturate(publisher, 1_000, 500, () => {
        most = Math.max(most, publisher.stats().window, publisher.stats().inFlight)
      })
      expect(most).toBe(8)
      expect(span.windows.every((w) => w === 8)).toBe(true)
    }))

  it.scoped("one of two links lost: the window shrinks to the slower path while its batches go through the other, and returns once it is back", () =>
    Effect.gen(function*() {
      // A long path (80 ms): 80 batches fill it through both links, 40 through one.
      const { publisher, links } = yield* fakePublisher({
        cap: 256,
        adaptive: true,
        path: { serviceMs: 2, baseMs: 80 }
      })
      const before = converged(saturate(publisher, 4_000, 2_500).windows)
      links[0]!.lose()
      const alone = converged(saturate(publisher, 2_000, 1_000).windows)
      links[0]!.back()
      const after = converged(saturate(publisher, 4_000, 2_500).windows)
      expect(publisher.stats().resends).toBeGreaterThan(0)
      expect(links[0]!.state).toBe("open")
      // One link serves half as fast: the same window would queue twice as long.
      expect(alone).toBeLessThan(0.85 * before)
      expect(after).toBeGreaterThan(0.9 * before)
      expect(after).toBeLessThan(1.1 * before)
    }))

  it.scoped("a path that became slower for good: the next probe measures its base again, and the window grows to fill it", () =>
    Effect.gen(function*() {
      const path = { ...PATH }
      const { publisher } = yield* fakePublisher({ cap: 512, adaptive: true, path })
      const short = converged(saturate(publisher, 2_000, 1_000).windows)
      // 200 ms now: the path holds 200 batches, and the base the window knows is 10 times too short.
      path.baseMs = 200
      const stale = saturate(publisher, 1_000, 500)
      // Past the probe (every 10 s of the publisher's time), and converged again.
      const renewed = saturate(publisher, 8_000, 5_000)
      expect(stale.batchesPerMs).toBeLessThan(0.75 * (2 / PATH.serviceMs))
      expect(renewed.batchesPerMs).toBeGreaterThan(0.95 * (2 / PATH.serviceMs))
      expect(converged(renewed.windows)).toBeGreaterThan(2 * short)
    }))
})
