/**
 * GROUP_DELIVERY frames: many deliveries in one frame, read back as sent (ids following the
 * frame's seq), each message's bytes its own once read (the frame reader reuses its buffers),
 * big messages split over frames, and a payload that does not hold what its header says refused.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  type DeliveredMessage,
  DELIVERY_FRAME_BYTES,
  deliveryFrames,
  readDeliveries
} from "../../src/layers/groups/GroupDeliveryFrame.js"
import { type Frame, FrameType } from "../../src/layers/net/Frame.js"
import { FrameReader } from "../../src/layers/net/FrameReader.js"
import type { Delivery } from "../../src/services/groups/ConsumerGroups.js"

const bytes = (text: string) => new TextEncoder().encode(text)

const deliveryOf = (m: DeliveredMessage): Delivery => ({
  group: "workers",
  topic: "jobs",
  ...m,
  ack: Effect.succeed(true),
  nak: () => Effect.succeed(true),
  term: () => Effect.succeed(true),
  inProgress: Effect.succeed(true)
})

const SENT: ReadonlyArray<DeliveredMessage> = [
  { offset: 0, timestamp: 1_700_000_000_123, deliveryCount: 1, key: undefined, headers: undefined, value: bytes("a") },
  { offset: 2 ** 40, timestamp: 1, deliveryCount: 7, key: bytes("k-1"), headers: undefined, value: new Uint8Array(0) },
  {
    offset: 5,
    timestamp: 2,
    deliveryCount: 2,
    key: new Uint8Array(0),
    headers: [{ name: "why ✓", value: bytes("x") }, { name: "", value: new Uint8Array(0) }],
    value: bytes("the value")
  }
]

/** The frames as a client's reader hands them out (its payloads views of what it was given). */
const received = (frames: ReadonlyArray<Buffer>): Array<Frame> => {
  const reader = new FrameReader({ accept: [FrameType.GROUP_DELIVERY], maxBatchBytes: 0 })
  reader.push(Buffer.concat(frames))
  const out: Array<Frame> = []
  for (let frame = reader.next(); frame !== undefined; frame = reader.next()) {
    if (!("type" in frame)) throw frame
    out.push(frame)
  }
  return out
}

describe("GROUP_DELIVERY frames", () => {
  it("carry many deliveries in one frame, read back as sent, their ids following the frame's seq", () => {
    const frames = deliveryFrames(9, 100, SENT.map(deliveryOf))
    expect(frames).toHaveLength(1)
    const [frame] = received(frames)
    expect(frame).toMatchObject({ type: FrameType.GROUP_DELIVERY, clientId: 9, seq: 100, messageCount: 3 })
    expect(readDeliveries(frame!.payload, frame!.messageCount)).toEqual(SENT)
  })

  it("hand out messages whose bytes are their own: the frame's buffer reused afterwards changes none", () => {
    const [frame] = received(deliveryFrames(1, 1, SENT.map(deliveryOf)))
    const read = readDeliveries(frame!.payload, frame!.messageCount)
    frame!.payload.fill(0xee)
    expect(read).toEqual(SENT)
  })

  it("split big messages over frames within the bound, the ids going on from frame to frame", () => {
    const big = (offset: number): DeliveredMessage => ({
      offset,
      timestamp: 0,
      deliveryCount: 1,
      key: undefined,
      headers: undefined,
      value: new Uint8Array(DELIVERY_FRAME_BYTES / 2).fill(offset)
    })
    const sent = [big(0), big(1), big(2), big(3), big(4)]
    const frames = received(deliveryFrames(3, 50, sent.map(deliveryOf)))
    expect(frames.length).toBeGreaterThan(1)
    const back: Array<DeliveredMessage> = []
    let id = 50
    for (const frame of frames) {
      expect(frame.payload.length).toBeLessThanOrEqual(DELIVERY_FRAME_BYTES)
      expect(frame.seq).toBe(id)
      id += frame.messageCount
      const read = readDeliveries(frame.payload, frame.messageCount)
      if (typeof read === "string") throw new Error(read)
      back.push(...read)
    }
    // Compared as buffers: a deep equality over megabytes element by element would take minutes.
    expect(back.map((m) => m.offset)).toEqual([0, 1, 2, 3, 4])
    back.forEach((m, i) => expect(Buffer.from(m.value).equals(Buffer.from(sent[i]!.value))).toBe(true))
  })

  it("refuse, saying why, a payload that holds fewer deliveries than its count, a cut one, or bytes past them", () => {
    const [frame] = received(deliveryFrames(1, 1, SENT.map(deliveryOf)))
    const payload = frame!.payload
    expect(readDeliveries(payload, 4)).toMatch(/of 4 deliveries holds 3/)
    expect(readDeliveries(payload.subarray(0, payload.length - 2), 3)).toMatch(/runs past its payload/)
    expect(readDeliveries(payload, 2)).toMatch(/bytes past them/)
  })
})
