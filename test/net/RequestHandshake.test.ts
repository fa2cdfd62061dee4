/**
 * The admin and consumer-group connections' side of a broker's authentication (RequestHandshake.ts):
 * a client with credentials refuses a READY from a broker that never challenged it, or that
 * challenged and did not prove itself; a challenge to a client without credentials is refused.
 */
import { describe, expect, it } from "@effect/vitest"
import { requestHandshake } from "../../src/layers/net/RequestHandshake.js"

const handshake = (credentials?: { user: string; secret: string }, insecure = false) => {
  const written: Array<Uint8Array> = []
  const refusals: Array<string> = []
  const h = requestHandshake({
    credentials,
    insecure,
    answer: "GROUP_READY",
    write: (frame) => written.push(frame),
    fail: (refusal) => refusals.push(refusal.code),
    ended: () => refusals.length > 0
  })
  return { h, written, refusals }
}

describe("a request connection's handshake", () => {
  it("with credentials, a READY that no CHALLENGE came before is refused auth-failed", () => {
    const { h } = handshake({ user: "alice", secret: "s3cret" })
    expect(h.nonce).toBeTypeOf("string")
    expect(h.readyProblem(undefined)).toMatchObject({ code: "auth-failed" })
    expect(h.readyProblem("forged")).toMatchObject({ code: "auth-failed" })
  })

  it("without credentials, a READY is taken and a CHALLENGE is refused auth-required", () => {
    const { h } = handshake()
    expect(h.nonce).toBeUndefined()
    expect(h.readyProblem(undefined)).toBeUndefined()
    expect(h.challenge(new Uint8Array(0), false)).toMatchObject({ code: "auth-required" })
  })

  it("a second CHALLENGE, or one after READY, is a bad frame", () => {
    const { h } = handshake({ user: "alice", secret: "s3cret" })
    expect(h.challenge(new Uint8Array(0), true)).toMatchObject({ code: "bad-frame", detail: "an unexpected CHALLENGE" })
  })
})
