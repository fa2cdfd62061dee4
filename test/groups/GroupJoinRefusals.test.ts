/**
 * A `join` a broker cannot take (GroupServer.ts) is refused on that request alone, typed
 * `InvalidGroupRequest`: an input of the wrong shape, or a member id this connection already
 * joined with. The connection goes on, and a member joined before keeps its deliveries. The
 * client's own link never sends either, so these requests are written here as a faulty client
 * would: the frame's JSON as it is, and its id as the test says.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schedule } from "effect"
import { GROUP_FRAMES, InvalidGroupRequest, JoinGroup } from "../../src/layers/groups/GroupProtocol.js"
import { encodeFrame, type Frame, FrameType } from "../../src/layers/net/Frame.js"
import { makeLocal } from "../../src/layers/net/Publisher.js"
import { openRequestLink } from "../../src/layers/net/RequestLink.js"
import { GroupsUnavailable } from "../../src/services/groups/ConsumerGroups.js"
import { AckTracker } from "../../src/services/log/AckTracker.js"
import { Appender } from "../../src/services/log/Appender.js"
import { insecureGroupsBroker, insecureLink } from "../fixtures/groups-broker.js"

const bare = { clientId: 0, sessionEpoch: 0, messageCount: 0 }

describe("a join the broker cannot take", () => {
  it.scopedLive("an input of the wrong shape and a member id joined twice: each refused InvalidGroupRequest, the member joined first goes on", () =>
    Effect.gen(function*() {
      const { address, local, log } = yield* insecureGroupsBroker
      yield* local.create({ name: "pool", topic: "jobs" })
      const publisher = yield* makeLocal({ region: "test", topic: "jobs" }).pipe(
        Effect.provideService(Appender, log.appender(0)),
        Effect.provideService(AckTracker, log.acks)
      )
      // How the frame's id is made from the link's own (as it is, unless the test says).
      let idOnWire = (id: number) => id
      const delivered: Array<Frame> = []
      const link = yield* Effect.acquireRelease(
        openRequestLink(address, insecureLink, {
          frames: GROUP_FRAMES,
          requestFrame: (id, operation, input) =>
            encodeFrame(
              { ...bare, type: FrameType.GROUP_REQUEST, seq: idOnWire(id) },
              new TextEncoder().encode(JSON.stringify({ operation: operation.tag, input }))
            ),
          answerName: "a groups' answer",
          unavailable: (reason) => new GroupsUnavailable({ reason }),
          unanswered: (failed) => failed.message,
          others: [FrameType.GROUP_DELIVERY, FrameType.GROUP_LEFT],
          other: (frame) => void delivered.push(frame)
        }),
        (l) => Effect.sync(() => l.close())
      )
      const refusal = (outcome: Either.Either<unknown, unknown>) =>
        Either.isLeft(outcome) && outcome.left instanceof InvalidGroupRequest ? outcome.left.reason : "not refused"

      // The wrong shape: the join's Schema names what is wrong; no member joins.
      const malformed: ReadonlyArray<[unknown, RegExp]> = [
        [{ name: 5 }, /name/],
        [{ name: "pool", maxInFlight: 0 }, /maxInFlight/],
        [{}, /name/]
      ]
      for (const [input, names] of malformed) {
        const reason = refusal(yield* Effect.either(link.call(JoinGroup, input as typeof JoinGroup.payload.Type)))
        expect(reason).toMatch(/^the input of join: /)
        expect(reason).toMatch(names)
      }
      expect((yield* local.describe("pool")).members).toEqual([])

      // A member joins under the id the link's next request will have; that request, a join, is refused.
      idOnWire = (id) => id + 1
      const member = link.send(JoinGroup, { name: "pool" })! + 1
      idOnWire = (id) => id
      const twice = yield* Effect.either(link.call(JoinGroup, { name: "pool" }))
      expect(refusal(twice)).toBe(`member ${member} joined already on this connection`)

      // The member joined first is still the group's one member, and its messages reach it.
      yield* publisher.publish(new TextEncoder().encode("job"))
      yield* publisher.flush(10_000)
      yield* Effect.repeat(Effect.sync(() => delivered.length), {
        until: (n) => n > 0,
        schedule: Schedule.spaced("10 millis")
      }).pipe(Effect.timeout("10 seconds"))
      expect(delivered.map((f) => [f.type, f.clientId])).toEqual([[FrameType.GROUP_DELIVERY, member]])
      expect((yield* local.describe("pool")).members).toHaveLength(1)
    }))
})
