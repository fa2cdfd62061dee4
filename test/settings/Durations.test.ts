/**
 * Durations in public options: each span of time is taken as a `DurationInput` under its plain
 * name (`linger`, `sessionIdle`) beside its number form in milliseconds (`lingerMs`), and the
 * engines see the milliseconds the duration says.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Layer } from "effect"
import { withMillis } from "../../src/Durations.js"
import { settingsOf } from "../../src/layers/net/PublisherDefaults.js"
import * as CxlogTesting from "../../src/layers/testing/TestCluster.js"
import { DEFAULT_CONSUMER_HOLD_MS } from "../../src/services/log/Consumers.js"
import { checkSequencerOptions } from "../../src/services/log/Sequencer.js"

const brokers = [{ host: "127.0.0.1", port: 7400 }]

describe("durations in options", () => {
  it("a duration is written into its number form; given both, the duration counts", () => {
    expect(
      withMillis({ linger: "2 seconds", lingerMs: 5 } as { linger?: Duration.DurationInput; lingerMs?: number }, [
        "linger"
      ]).lingerMs
    ).toBe(2_000)
    expect(withMillis({ lingerMs: 5 } as { linger?: Duration.DurationInput; lingerMs?: number }, ["linger"]).lingerMs)
      .toBe(5)
    expect(
      withMillis({ linger: Duration.millis(250) } as { linger?: Duration.DurationInput; lingerMs?: number }, ["linger"])
        .lingerMs
    ).toBe(250)
  })

  it("a publisher's durations reach its settings as milliseconds", () => {
    const settings = settingsOf({
      brokers,
      topic: "t",
      linger: "3 millis",
      connectTimeout: "2 seconds",
      ackTimeout: Duration.minutes(1),
      reconnectDelay: 40
    })
    expect(settings.lingerMs).toBe(3)
    expect(settings.connectTimeoutMs).toBe(2_000)
    expect(settings.ackTimeoutMs).toBe(60_000)
    expect(settings.reconnectDelayMs).toBe(40)
    // The number forms still work.
    expect(settingsOf({ brokers, topic: "t", lingerMs: 7 }).lingerMs).toBe(7)
  })

  it("the sequencer's bounds are checked in the milliseconds their durations say", () => {
    const refused = checkSequencerOptions({ sessionIdle: "1 minute", sessionGapIdle: "30 seconds" })
    expect(Either.isLeft(refused) && refused.left._tag).toBe("SessionGapIdleTooShort")
    const taken = checkSequencerOptions({
      sessionIdle: "1 minute",
      sessionGapIdle: "2 minutes",
      holdTimeout: "1 second"
    })
    expect(Either.getOrThrow(taken)).toMatchObject({
      sessionIdleMs: 60_000,
      sessionGapIdleMs: 120_000,
      holdTimeoutMs: 1_000
    })
  })

  it.effect("a sequencer's or a test cluster's span that is no duration is InvalidSequencerOptions naming it, not a thrown defect", () =>
    Effect.gen(function*() {
      for (const [name, value] of [["holdTimeout", "5 sekonds"], ["lease", {}], ["waitForLease", "soon"]] as const) {
        const refused = checkSequencerOptions({ [name]: value as unknown as Duration.DurationInput })
        expect(Either.isLeft(refused) && refused.left._tag).toBe("InvalidSequencerOptions")
        expect(Either.isLeft(refused) && refused.left.message).toContain(
          `invalid sequencer options: ${name} must be a duration ("5 seconds", Duration.seconds(5))`
        )
      }
      const failed = yield* Effect.flip(
        Layer.build(CxlogTesting.cluster({ topics: ["t"], holdTimeout: "5 sekonds" as Duration.DurationInput }))
      ).pipe(Effect.scoped)
      expect(failed._tag).toBe("InvalidSequencerOptions")
      expect(failed.message).toContain("holdTimeout must be a duration")
    }))

  it("a broker's default cut-off of a stalled consumer comes well before a publisher's default ACK timeout", () => {
    // Equal, the publishers it holds gave up on batches the log then ordered (resent, they are duplicates).
    const publisher = settingsOf({ brokers, topic: "t" })
    expect(DEFAULT_CONSUMER_HOLD_MS + 5_000).toBeLessThanOrEqual(publisher.ackTimeoutMs)
  })
})
