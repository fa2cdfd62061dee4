/**
 * A subscriber waiting for new messages is never idle, so a host that vanished there (no FIN)
 * is found by TCP keepalive on the broker's side of the subscription. Checked in the kernel's
 * own state rather than by spying on Node: /proc/net/tcp shows the socket's keepalive timer
 * (timer 2) and when it fires, which is within the broker's 60 s delay, not the system default
 * (7200 s) that a socket without the option, or one given no delay, would show.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { PROTOCOL_VERSION } from "../../src/layers/net/Control.js"
import { FrameType } from "../../src/layers/net/Frame.js"
import { Subscribe, subscribeFrame } from "../../src/layers/net/SubscribeFrames.js"
import { rawConnect } from "../fixtures/net-raw-client.js"

/** /proc/net/tcp reports timers in USER_HZ ticks. */
const TICKS_PER_SECOND = 100
const KEEPALIVE_TIMER = 2

/** The timer of the established IPv4 socket bound to local port `local` with peer port `peer`: its kind and ticks left. */
const timerOf = (local: number, peer: number): { readonly kind: number; readonly ticks: number } | undefined => {
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const [, localAddress, remoteAddress, state, , timer] = line.trim().split(/\s+/)
    if (localAddress === undefined || remoteAddress === undefined || timer === undefined || state !== "01") continue
    if (parseInt(localAddress.split(":")[1]!, 16) !== local || parseInt(remoteAddress.split(":")[1]!, 16) !== peer) {
      continue
    }
    const [kind, ticks] = timer.split(":")
    return { kind: parseInt(kind!, 16), ticks: parseInt(ticks!, 16) }
  }
  return undefined
}

describe("a subscription connection's TCP keepalive", () => {
  it.scopedLive("the broker's side of a subscription has keepalive on, probing after the broker's 60 s delay", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const broker = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(BrokerLogLayers.layerMemory(log, 0))
      )
      const client = yield* rawConnect(broker.port)
      client.write(
        subscribeFrame(new Subscribe({ protocol: PROTOCOL_VERSION, topic: "t", from: "earliest", credit: 16 }))
      )
      expect((yield* client.nextFrame()).type).toBe(FrameType.SUBSCRIBED)
      // A retransmission timer shows instead while a segment is unacknowledged: look until the connection is quiet (bounded).
      let seen: ReturnType<typeof timerOf>
      for (let attempt = 0; attempt < 250; attempt++) {
        seen = timerOf(broker.port, client.socket.localPort!)
        if (seen?.kind === KEEPALIVE_TIMER) break
        yield* Effect.sleep(20)
      }
      expect(seen, "the broker's socket of the subscription in /proc/net/tcp").toBeDefined()
      expect(seen!.kind, "its timer: 2 is keepalive, 0 none").toBe(KEEPALIVE_TIMER)
      expect(seen!.ticks).toBeGreaterThan(0)
      expect(seen!.ticks).toBeLessThanOrEqual(60 * TICKS_PER_SECOND)
    }))
})
