/**
 * Rpc request frames with and without their caller's deadline (docs/control-plane/rpc.md, "A call's
 * deadline"): a request with one is sent as `requestUntil` and read back as a request with it; one
 * with no bound, or from a build before deadlines, is a plain `request` read with none.
 */
import { describe, expect, it } from "@effect/vitest"
import { decodeFrame, frameBytes, HEADER_BYTES, Kind, outFrame } from "../../src/layers/control/RpcFrames.js"

describe("Rpc frames", () => {
  it("a request and a retry with a deadline carry it after the header and read back as request and retry", () => {
    const deadlineMs = Date.UTC(2026, 11, 2, 1, 30) + 0.5
    for (const [sent, written] of [[Kind.request, Kind.requestUntil], [Kind.retry, Kind.retryUntil]] as const) {
      const bytes = frameBytes(outFrame(sent, 0x2_0003, 41, "create-topic", `{"name":"orders"}`, 2, deadlineMs))
      expect(bytes[0]).toBe(written)
      expect(bytes.length).toBe(HEADER_BYTES + 8 + "create-topic".length + `{"name":"orders"}`.length)
      expect(decodeFrame(bytes)).toEqual({
        kind: sent,
        replySlot: 2,
        client: 0x2_0003,
        requestId: 41,
        deadlineMs,
        tag: "create-topic",
        json: `{"name":"orders"}`
      })
    }
  })

  it("a request with no bound is a plain request, read with no deadline; a reply never carries one", () => {
    const unbounded = frameBytes(outFrame(Kind.request, 1, 7, "list-members", "{}", 0))
    expect(unbounded[0]).toBe(Kind.request)
    expect(decodeFrame(unbounded)).toMatchObject({ kind: Kind.request, deadlineMs: Infinity, tag: "list-members" })
    const reply = frameBytes(outFrame(Kind.success, 1, 7, "list-members", "[]", -1, 1_000))
    expect(reply[0]).toBe(Kind.success)
    expect(reply.length).toBe(HEADER_BYTES + "list-members".length + 2)
  })

  it("a deadline frame too short for its deadline and tag, or whose deadline is not a number, is malformed", () => {
    const bytes = frameBytes(outFrame(Kind.request, 1, 7, "Add", `{"a":1}`, 0, 5_000))
    expect(decodeFrame(bytes.subarray(0, HEADER_BYTES + 8 + 2))).toBeUndefined()
    const notANumber = bytes.slice()
    new DataView(notANumber.buffer).setFloat64(HEADER_BYTES, Number.NaN, true)
    expect(decodeFrame(notANumber)).toBeUndefined()
    expect(decodeFrame(bytes)).toMatchObject({ deadlineMs: 5_000, tag: "Add", json: `{"a":1}` })
  })
})
