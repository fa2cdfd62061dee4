/**
 * A durable subscriber's cursor: a subscriber line of its topic, claimed like a participant
 * line, whose cursor (the next global seq it reads) holds retention until the scope closes.
 * The same for the region (LogReader.ts) and the in-process store's private region
 * (LogReaderMemory.ts).
 */
import { Effect, type Scope } from "effect"
import { SubscriberTableFull } from "../../../services/log/LogReader.js"
import type { TopicInfo } from "../../../services/log/Topics.js"
import type { CxlMemoryShape } from "../../../services/region/CxlMemory.js"
import { claimSubscriber, moveSubscriber, releaseSubscriber, type SubscriberArea } from "../Participants.js"

/**
 * A durable cursor at batch `cursor` in a free subscriber line of the topic (its claim naming
 * doorbell `bell`) until the scope closes; returns how to move it on. `moved` wakes whoever
 * waits on retention, after each move and at the release.
 */
export const holdCursor = (
  region: CxlMemoryShape,
  area: SubscriberArea,
  bell: number,
  info: TopicInfo,
  cursor: number,
  moved: () => void
): Effect.Effect<(next: number) => void, SubscriberTableFull, Scope.Scope> => {
  const claim = Effect.suspend(() => {
    const claimed = claimSubscriber(region, area, bell, info.id, cursor)
    return claimed !== undefined
      ? Effect.succeed(claimed)
      : Effect.fail(new SubscriberTableFull({ topic: info.name, slots: area.config.subscriberSlots }))
  })
  const release = ({ line, occurrence }: { readonly line: number; readonly occurrence: number }) =>
    Effect.sync(() => {
      releaseSubscriber(region, line, occurrence)
      moved()
    })
  return Effect.map(Effect.acquireRelease(claim, release), ({ line }) => (next: number) => {
    moveSubscriber(region, line, next)
    moved()
  })
}
