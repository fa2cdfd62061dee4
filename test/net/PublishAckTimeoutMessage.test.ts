/**
 * What a publisher's ACK timeout tells its user to look at: the brokers when none is connected
 * (the head cannot order what never reached one), the head when a broker took the batches.
 */
import { describe, expect, it } from "@effect/vitest"
import { type BrokerLink, PublishAckTimeout } from "../../src/services/net/Publisher.js"

const broker = (name: string, connected: boolean): BrokerLink => ({
  name,
  address: "127.0.0.1:7400",
  acked: 0,
  sent: 3,
  connected,
  sessions: connected ? 1 : 0,
  ...(connected ? {} : { lastClose: "unreachable" })
})

describe("PublishAckTimeout's message", () => {
  it("points at the brokers when none is connected, at the head when one is", () => {
    const down = new PublishAckTimeout({
      timeoutMs: 1000,
      outstanding: 3,
      brokers: [broker("B0", false), broker("B1", false)]
    })
    expect(down.message).toContain("no broker is connected: are they running and reachable?")
    expect(down.message).not.toContain("head")
    const up = new PublishAckTimeout({
      timeoutMs: 1000,
      outstanding: 3,
      brokers: [broker("B0", false), broker("B1", true)]
    })
    expect(up.message).toContain("is the head (sequencer) running?")
  })
})
