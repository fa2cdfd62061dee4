/**
 * The remote subscriber's receive buffer (ReceiveBuffer.ts): frames arrive whole whatever the
 * reads' boundaries — every split offset of a stream, through reads into `target()` (plain TCP)
 * and chunks copied in (`land`, TLS) — and a frame handed out stays intact, whatever is read
 * after it, until `release()`.
 */
import { describe, expect, it } from "@effect/vitest"
import { WireViolation } from "../../src/layers/net/Control.js"
import { encodeFrame, type Frame, FRAME_HEADER_BYTES, FrameType } from "../../src/layers/net/Frame.js"
import { ReceiveBuffer } from "../../src/layers/net/ReceiveBuffer.js"

const ACCEPT = [FrameType.CHALLENGE, FrameType.SUBSCRIBED, FrameType.DATA, FrameType.ERROR]

/** A DATA frame of `bytes` payload bytes, a pattern of `n`, and what it should read back as. */
const dataFrame = (n: number, bytes: number) => {
  const payload = Uint8Array.from({ length: bytes }, (_, k) => (n * 37 + k * 11) & 0xff)
  return {
    wire: encodeFrame({ type: FrameType.DATA, clientId: 1, sessionEpoch: 2, seq: 100 * n, messageCount: 1 }, payload),
    seq: 100 * n,
    payload
  }
}

/** Frames around, below and above the buffer's size (64 bytes), an empty one and a control frame among them. */
const BUFFER_BYTES = 64
const frames = [
  dataFrame(1, 20),
  dataFrame(2, 0),
  dataFrame(3, 40),
  dataFrame(4, 150),
  dataFrame(5, 7),
  dataFrame(6, 64),
  dataFrame(7, 31)
]
const stream = Buffer.concat(frames.map((f) => f.wire))

type Feed = (input: ReceiveBuffer, bytes: Uint8Array) => void

/** Reads as a socket with onread does: into `target()` (never more than it offers), reported by `filled`. */
const readInto: Feed = (input, bytes) => {
  let at = 0
  while (at < bytes.length) {
    const into = input.target()
    expect(into.length).toBeGreaterThan(0)
    const n = Math.min(into.length, bytes.length - at)
    into.set(bytes.subarray(at, at + n), 0)
    input.filled(into, n)
    at += n
  }
}

/** Chunks as a TLS socket emits them, copied in. */
const landIn: Feed = (input, bytes) => input.land(bytes)

/**
 * Feeds `pieces` one after the other; after each, pulls as a subscriber does (release, then at
 * most one frame) until no whole frame is in. The frame in hand is checked again after every
 * later piece: it must stay intact until the next release.
 */
const receive = (feed: Feed, pieces: ReadonlyArray<Uint8Array>) => {
  const input = new ReceiveBuffer({ accept: ACCEPT, maxBatchBytes: 1 << 20, bufferBytes: BUFFER_BYTES })
  const got: Array<{ seq: number; payload: Array<number> }> = []
  let held: { frame: Frame; expected: Uint8Array } | undefined
  const checkHeld = () => {
    if (held !== undefined) expect(Buffer.compare(held.frame.payload, held.expected)).toBe(0)
  }
  for (const piece of pieces) {
    feed(input, piece)
    checkHeld()
    for (;;) {
      input.release()
      held = undefined
      const frame = input.next()
      if (frame === undefined) break
      if (frame instanceof WireViolation) throw frame
      const expected = frames[got.length]!
      held = { frame, expected: expected.payload }
      got.push({ seq: frame.seq, payload: Array.from(frame.payload) })
      // A frame handed out and the next piece read before the pull after it: both stay intact.
      checkHeld()
      if (!input.frameReady) break
    }
  }
  return got
}

const all = frames.map((f) => ({ seq: f.seq, payload: Array.from(f.payload) }))

describe("the remote subscriber's receive buffer", () => {
  for (
    const [label, feed] of [["reads into target() (plain TCP)", readInto], ["chunks copied in (TLS)", landIn]] as const
  ) {
    it(`${label}: every frame whole and intact, for a split at every offset of the stream`, () => {
      for (let split = 0; split <= stream.length; split++) {
        expect(receive(feed, [stream.subarray(0, split), stream.subarray(split)]), `split at ${split}`).toEqual(all)
      }
    })

    it(`${label}: byte by byte, and in pieces of every size up to a frame and a half`, () => {
      for (let size = 1; size <= 100; size++) {
        const pieces: Array<Uint8Array> = []
        for (let at = 0; at < stream.length; at += size) pieces.push(stream.subarray(at, at + size))
        expect(receive(feed, pieces), `pieces of ${size}`).toEqual(all)
      }
    })
  }

  it("a frame handed out stays intact while what follows is read, across the buffer's end, until release", () => {
    const input = new ReceiveBuffer({ accept: ACCEPT, maxBatchBytes: 1 << 20, bufferBytes: BUFFER_BYTES })
    readInto(input, frames[2]!.wire.subarray(0, FRAME_HEADER_BYTES + 40))
    const first = input.next()
    expect(first).toMatchObject({ seq: 300 })
    // Not released: the next frames must go elsewhere than under it.
    readInto(input, Buffer.concat([frames[0]!.wire, frames[4]!.wire, frames[3]!.wire]))
    expect(Array.from((first as Frame).payload)).toEqual(Array.from(frames[2]!.payload))
    expect(input.next()).toMatchObject({ seq: 100 })
  })

  it("a header past the bounds is a typed violation before any of its payload is taken; reading pauses once the unread bytes fill the buffer", () => {
    const input = new ReceiveBuffer({ accept: ACCEPT, maxBatchBytes: 100, bufferBytes: BUFFER_BYTES })
    readInto(input, dataFrame(8, 101).wire.subarray(0, FRAME_HEADER_BYTES))
    expect(input.frameReady).toBe(true)
    expect(input.next()).toMatchObject({ _tag: "WireViolation", code: "oversized" })

    const full = new ReceiveBuffer({ accept: ACCEPT, maxBatchBytes: 1 << 20, bufferBytes: BUFFER_BYTES })
    readInto(full, frames[3]!.wire.subarray(0, BUFFER_BYTES - 1))
    expect(full.full).toBe(false)
    readInto(full, frames[3]!.wire.subarray(BUFFER_BYTES - 1, BUFFER_BYTES))
    expect(full.full).toBe(true)
    // The read in flight when reading paused (and the first after resuming) lands in the spill and is copied in.
    readInto(full, Buffer.concat([frames[3]!.wire.subarray(BUFFER_BYTES), frames[4]!.wire]))
    expect(full.next()).toMatchObject({ seq: 400, payload: frames[3]!.payload })
    full.release()
    expect(full.next()).toMatchObject({ seq: 500, payload: frames[4]!.payload })
    const bad = new ReceiveBuffer({ accept: [FrameType.DATA], maxBatchBytes: 1 << 20, bufferBytes: BUFFER_BYTES })
    readInto(
      bad,
      encodeFrame({ type: FrameType.ERROR, clientId: 0, sessionEpoch: 0, seq: 0, messageCount: 0 }, new Uint8Array(4))
    )
    expect(bad.next()).toMatchObject({ _tag: "WireViolation", code: "bad-frame-type" })
  })
})
