/**
 * The replies a server keeps for requests sent again: a retry finds its kept reply, or the first
 * run still going, or a request never seen (run it); one whose reply is no longer kept is `lost`,
 * and a new process in the client's slot (its request ids start again) does not get the old one's.
 * A server that took another's place never saw what was sent before it read the ring: a retry of
 * it runs.
 */
import { describe, expect, it } from "@effect/vitest"
import { Kind, outFrame } from "../../src/layers/control/RpcFrames.js"
import { KEPT_REPLIES, ReplyMemo } from "../../src/layers/control/RpcReplyMemo.js"

const replyTo = (client: number, requestId: number) => outFrame(Kind.success, client, requestId, "Add", `${requestId}`)

describe("ReplyMemo", () => {
  it("answers a retry with the kept reply, 'running' before it, 'unseen' for a request never sent", () => {
    const memo = new ReplyMemo()
    memo.started(3, 1)
    expect(memo.retry(3, 1)).toBe("running")
    const reply = replyTo(3, 1)
    memo.replied(3, reply)
    expect(memo.retry(3, 1)).toBe(reply)
    // Another client's request 1 is another request.
    expect(memo.retry(4, 1)).toBe("unseen")
    expect(memo.retry(3, 2)).toBe("unseen")
  })

  it(`keeps the last ${KEPT_REPLIES} replies per client: an older one is 'lost', never run again`, () => {
    const memo = new ReplyMemo()
    for (let id = 1; id <= KEPT_REPLIES + 1; id++) {
      memo.started(0, id)
      memo.replied(0, replyTo(0, id))
    }
    expect(memo.retry(0, 1)).toBe("lost")
    expect(memo.retry(0, 2)).toMatchObject({ requestId: 2 })
    expect(memo.retry(0, KEPT_REPLIES + 1)).toMatchObject({ requestId: KEPT_REPLIES + 1 })
  })

  it("forgets a client's replies when a new process takes its slot (request ids start again)", () => {
    const memo = new ReplyMemo()
    for (const id of [1, 2, 3]) {
      memo.started(0, id)
      memo.replied(0, replyTo(0, id))
    }
    memo.started(0, 1)
    expect(memo.retry(0, 1)).toBe("running")
    expect(memo.retry(0, 2)).toBe("unseen")
    // A reply to a request no longer tracked is not kept.
    memo.replied(0, replyTo(0, 3))
    expect(memo.retry(0, 3)).toBe("unseen")
  })

  it("runs a retry of a request sent before it read the ring (below the first it saw), as a server that took another's place, once", () => {
    const memo = new ReplyMemo()
    // Requests 1 to 6 went to the server it replaced; 7 is the first it read.
    memo.started(0, 7)
    memo.replied(0, replyTo(0, 7))
    expect(memo.retry(0, 5)).toBe("unseen")
    expect(memo.retry(0, 6)).toBe("unseen")
    memo.started(0, 5, true)
    // Its run is now known, and it took nothing kept from the requests after it.
    expect(memo.retry(0, 5)).toBe("running")
    expect(memo.retry(0, 6)).toBe("unseen")
    expect(memo.retry(0, 7)).toMatchObject({ requestId: 7 })
    memo.started(0, 8)
    expect(memo.retry(0, 7)).toMatchObject({ requestId: 7 })
  })
})
