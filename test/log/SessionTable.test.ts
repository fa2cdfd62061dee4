import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { type AckTopic, ackTrackerOver } from "../../src/layers/log/AckTracker.js"
import { SESSION_LINE_BYTES } from "../../src/layers/log/Layout.js"
import { AHEAD_WINDOW, SessionState } from "../../src/layers/log/Records.js"
import { RegistryLineView, SessionLineView } from "../../src/layers/log/RecordViews.js"
import { type LineView, sessionHash, SessionTable, UNSETTLED } from "../../src/layers/log/SessionTable.js"
import { LINE_BYTES } from "../../src/services/region/CxlMemory.js"

const SLOTS = 16

/** An ACK tracker over one topic whose sessions live in `table`. */
const trackerOver = (table: SessionTable) => {
  const topic = {
    info: { name: "t", id: 0, generation: 1, order: 5, ackLevel: 1, replicationFactor: 1 },
    sessions: table,
    brokers: 1,
    sent: () => 0,
    acked: () => 0,
    owned: () => true,
    progress: () => 0,
    deleted: () => false,
    totalOrder: () => undefined
  } as unknown as AckTopic
  return ackTrackerOver({
    topic: () => Effect.succeed(topic),
    await: (condition) => Effect.sync(condition),
    watch: (condition, onReady) => {
      onReady(condition())
      return () => {}
    }
  })
}

/** A table over private memory: the registry line, then the session lines. The hooks see each write-back and invalidation. */
const privateTable = (
  onPublish: (offset: number, length: number) => void = () => {},
  onInvalidate: (offset: number, length: number) => void = () => {}
) => {
  const buffer = new ArrayBuffer(LINE_BYTES + SLOTS * SESSION_LINE_BYTES)
  const view: LineView = {
    i32: new Int32Array(buffer),
    u32: new Uint32Array(buffer),
    f64: new Float64Array(buffer),
    publish: onPublish,
    invalidate: onInvalidate
  }
  return {
    table: new SessionTable(view, LINE_BYTES, 0, SLOTS),
    lines: new SessionLineView(view),
    registry: new RegistryLineView(view),
    lineAt: (slot: number) => LINE_BYTES + slot * SESSION_LINE_BYTES
  }
}

/** A client id whose key with `sessionEpoch` hashes to `slot` (its probe starts there). */
const keyAt = (slot: number, sessionEpoch: number): number => {
  for (let clientId = 1;; clientId++) if (sessionHash(clientId, sessionEpoch, SLOTS) === slot) return clientId
}

describe("SessionTable lookups while a writer is preempted inside a line's seqlock", () => {
  it("a line held mid-write on the probe path makes the lookup unsettled, never 'not registered'", () => {
    const { lineAt, lines, table } = privateTable()
    const registered = table.register(7, 0)
    if ("full" in registered) throw new Error("table full")
    const found = table.lookup(7, registered.sessionEpoch)
    expect(found).toMatchObject({ slot: registered.slot, state: "active" })

    // The sequencer publishing this session's state, descheduled between its two version stores.
    const line = lineAt(registered.slot)
    const version = lines.version(line)
    lines.storeVersion(line, version + 1)
    expect(table.lookup(7, registered.sessionEpoch)).toBe(UNSETTLED)
    expect(table.lookup(7, registered.sessionEpoch, registered.slot)).toBe(UNSETTLED)
    // The sequencer's own adoption is not fooled either way: batches follow a finished registration.
    expect(table.find(7, registered.sessionEpoch)).toBeUndefined()

    lines.storeVersion(line, version + 2)
    expect(table.lookup(7, registered.sessionEpoch)).toMatchObject({ slot: registered.slot, state: "active" })
  })

  it("a key that is truly absent is still undefined when no line on its path is mid-write", () => {
    const { table } = privateTable()
    const registered = table.register(7, 0)
    if ("full" in registered) throw new Error("table full")
    const absentEpoch = registered.sessionEpoch + 1000
    expect(table.lookup(7, absentEpoch)).toBeUndefined()
  })
})

describe("AckTracker over a preempted seqlock writer", () => {
  it.effect("keeps the session known at its last frontier instead of reporting it gone (the broker would reject a live session)", () =>
    Effect.gen(function*() {
      const { lineAt, lines, table } = privateTable()
      const registered = table.register(7, 0)
      if ("full" in registered) throw new Error("table full")
      table.publish(registered.slot, 7, registered.sessionEpoch, {
        next: 5,
        orderedMessages: 50,
        duplicates: 0,
        held: 0,
        lastActivityMs: 0,
        fenced: false
      })
      const acks = trackerOver(table)
      expect(yield* acks.sessionAcks("t", 7, registered.sessionEpoch)).toMatchObject({ known: true, ordered: 5 })

      const line = lineAt(registered.slot)
      lines.storeVersion(line, lines.version(line) + 1)
      expect(yield* acks.sessionAcks("t", 7, registered.sessionEpoch)).toMatchObject({
        known: true,
        ordered: 5,
        fenced: false
      })
    }))
})

describe("SessionTable: the ahead line and lapsed sessions (orders 0/2/4)", () => {
  const fields = { orderedMessages: 3, duplicates: 0, held: 0, lastActivityMs: 5, fenced: false }
  it("the batches ordered above the frontier read back from the line, to the window's last bit; a later publish without them clears them", () => {
    const { table } = privateTable()
    const registered = table.register(7, 0)
    if ("full" in registered) throw new Error("table full")
    const { slot, sessionEpoch } = registered
    const ahead = new Set([11, 42, 43, 10 + AHEAD_WINDOW])
    table.publish(slot, 7, sessionEpoch, { ...fields, next: 10, ahead })
    const read = () => {
      const found: Array<ReadonlyArray<number>> = []
      table.forEachSession((_, clientId, epoch, _state, f) => {
        if (clientId === 7 && epoch === sessionEpoch) found.push([f.next, ...(f.ahead ?? [])])
      })
      return found
    }
    expect(read()).toEqual([[10, ...ahead]])
    table.publish(slot, 7, sessionEpoch, { ...fields, next: 44 })
    expect(read()).toEqual([[44]])
  })

  it("a lapsed session is unknown to lookups (its publisher is told so) and its line is free for a new registration", () => {
    const { table } = privateTable()
    const registered = table.register(7, 0)
    if ("full" in registered) throw new Error("table full")
    const { slot, sessionEpoch } = registered
    table.lapse(slot, 7, sessionEpoch, { ...fields, next: 0, ahead: new Set([1]) })
    expect(table.lookup(7, sessionEpoch)).toBeUndefined()
    expect(table.lookup(7, sessionEpoch, slot)).toBeUndefined()
    expect(table.liveCount()).toBe(0)
    // A registration whose probe starts at the lapsed line takes it.
    const client = keyAt(slot, sessionEpoch + 1)
    expect(table.registerAs(client, sessionEpoch + 1, 0)).toEqual({ sessionEpoch: sessionEpoch + 1, slot })
  })
})

describe("SessionTable: a registration killed between its claim and its write", () => {
  it("a claim of a lapsed line whose claimer died leaves it lapsed: the lapsed session stays unknown, never released at its old frontier", () => {
    const { lineAt, lines, registry, table } = privateTable()
    const registered = table.register(7, 0)
    if ("full" in registered) throw new Error("table full")
    const { slot, sessionEpoch } = registered
    table.lapse(slot, 7, sessionEpoch, {
      orderedMessages: 1,
      duplicates: 0,
      held: 0,
      lastActivityMs: 5,
      fenced: false,
      next: 3,
      ahead: new Set([5])
    })
    // A broker's registration: its place in `live`, then its compare-and-swap, then killed.
    registry.addLive(0, 1)
    expect(lines.swapState(lineAt(slot), SessionState.lapsed, SessionState.claiming)).toBe(true)
    expect(table.releaseDeadClaims()).toBe(0)
    expect(table.releaseDeadClaims()).toBe(1)
    expect(table.lookup(7, sessionEpoch)).toBeUndefined()
    expect(table.lookup(7, sessionEpoch, slot)).toBeUndefined()
    expect(table.liveCount()).toBe(0)
  })
})

describe("SessionTable: a writer killed inside a line's seqlock", () => {
  const fields = { orderedMessages: 3, duplicates: 0, held: 0, lastActivityMs: 5, fenced: false }
  it("recovery is told the line is torn (a frontier moved, the bitmap of the write before), and the version is made even", () => {
    const { lineAt, lines, table } = privateTable()
    const registered = table.register(7, 0)
    if ("full" in registered) throw new Error("table full")
    const { slot, sessionEpoch } = registered
    table.publish(slot, 7, sessionEpoch, { ...fields, next: 0, ahead: new Set([1]) })
    const seen = () => {
      const found: Array<{ readonly next: number; readonly ahead: ReadonlyArray<number>; readonly torn: boolean }> = []
      table.forEachSession((_, clientId, epoch, _state, f, torn) => {
        if (clientId === 7 && epoch === sessionEpoch) found.push({ next: f.next, ahead: [...(f.ahead ?? [])], torn })
      })
      return found
    }
    expect(seen()).toEqual([{ next: 0, ahead: [1], torn: false }])
    // The write that ordered batch 0 (frontier 2, nothing above it), cut after its frontier.
    const line = lineAt(slot)
    lines.storeVersion(line, lines.version(line) + 1)
    lines.setNext(line, 2)
    expect(seen()).toEqual([{ next: 2, ahead: [3], torn: true }])
    expect(lines.version(line) & 1).toBe(0)
    expect(seen()).toEqual([{ next: 2, ahead: [3], torn: false }])
  })

  it("a registration's line turns active only with its version even: an active line left odd is always a sequencer's write", () => {
    const states: Array<{ readonly state: number; readonly version: number }> = []
    const { lineAt, lines, table } = privateTable((offset) => {
      if (offset >= LINE_BYTES) {
        const line = lineAt(Math.floor((offset - LINE_BYTES) / SESSION_LINE_BYTES))
        states.push({ state: lines.state(line), version: lines.version(line) })
      }
    })
    for (let i = 0; i < 4; i++) expect("full" in table.register(7 + i, 0)).toBe(false)
    expect(states.length).toBeGreaterThan(0)
    expect(states.filter((s) => s.state === SessionState.active && (s.version & 1) !== 0)).toEqual([])
  })
})

describe("SessionTable: the bitmap's line in non-coherent mode, and its window", () => {
  const fields = { orderedMessages: 3, duplicates: 0, held: 0, lastActivityMs: 5, fenced: false }
  it("a lookup invalidates the first line only; a write writes the bitmap's line back only while the bitmap is or was not empty", () => {
    const published: Array<number> = []
    const invalidated: Array<number> = []
    const { table } = privateTable((offset, length) => {
      if (offset >= LINE_BYTES && length > 4) published.push(length)
    }, (offset, length) => {
      if (offset >= LINE_BYTES) invalidated.push(length)
    })
    const registered = table.register(7, 0)
    if ("full" in registered) throw new Error("table full")
    const { slot, sessionEpoch } = registered
    invalidated.length = 0
    expect(table.lookup(7, sessionEpoch)).toMatchObject({ slot })
    expect(invalidated.length).toBeGreaterThan(0)
    expect(invalidated.every((length) => length === LINE_BYTES)).toBe(true)
    // A registration clears the bitmap whatever its view of it: both lines.
    expect(published).toEqual([SESSION_LINE_BYTES, 8])
    published.length = 0
    const publish = (next: number, ahead?: ReadonlySet<number>) =>
      table.publish(slot, 7, sessionEpoch, { ...fields, next, ...(ahead === undefined ? {} : { ahead }) })
    publish(1)
    publish(1, new Set([3]))
    publish(4)
    publish(5)
    expect(table.setDurable(7, sessionEpoch, 2)).toBe(true)
    expect(published).toEqual([LINE_BYTES, SESSION_LINE_BYTES, SESSION_LINE_BYTES, LINE_BYTES, LINE_BYTES])
  })

  it("a batch outside the window is the caller's defect, thrown before the line is touched", () => {
    const { lineAt, lines, table } = privateTable()
    const registered = table.register(7, 0)
    if ("full" in registered) throw new Error("table full")
    const { slot, sessionEpoch } = registered
    table.publish(slot, 7, sessionEpoch, { ...fields, next: 10, ahead: new Set([12]) })
    const version = lines.version(lineAt(slot))
    expect(() => table.publish(slot, 7, sessionEpoch, { ...fields, next: 10, ahead: new Set([12, 11 + AHEAD_WINDOW]) }))
      .toThrow(/outside the ahead window/)
    expect(() => table.publish(slot, 7, sessionEpoch, { ...fields, next: 10, ahead: new Set([10]) })).toThrow(
      /outside the ahead window/
    )
    expect(lines.version(lineAt(slot))).toBe(version)
    expect(table.lookup(7, sessionEpoch)).toMatchObject({ next: 10 })
    expect(lines.aheadWord(lineAt(slot), 0)).toBe(2)
  })
})
