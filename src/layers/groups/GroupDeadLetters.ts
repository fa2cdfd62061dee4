/**
 * A group's dead letters: a message terminated (`term`) or delivered `maxDeliver` times goes to
 * the group's dead-letter topic — its key, value and headers, and headers saying where it came
 * from and why — published and acknowledged before its pending entry is freed, so a member that
 * dies meanwhile leaves it pending (it is delivered again, and may reach the dead letters twice:
 * at least once). A group without a dead-letter topic counts such messages and drops them.
 */
import { Effect } from "effect"
import { DeadLetterFailed } from "../../services/groups/ConsumerGroups.js"
import type { PublisherShape } from "../../services/net/Publisher.js"
import type { GroupConfig } from "./GroupLayout.js"
import type { GroupMessage } from "./GroupReader.js"

/** The headers a dead letter carries besides the message's own. */
export const DeadLetterHeader = {
  reason: "cxlog-dead-letter-reason",
  group: "cxlog-group",
  topic: "cxlog-topic",
  offset: "cxlog-offset",
  deliveries: "cxlog-deliveries"
} as const

export type DeadLetterWriter = (
  message: GroupMessage,
  reason: string,
  deliveries: number
) => Effect.Effect<void, DeadLetterFailed>

/** Writes a group's dead letters through `publisher` (none in this process: a group with a dead-letter topic fails them). */
export const deadLetterWriter = (
  group: string,
  config: GroupConfig,
  publisher: PublisherShape | undefined
): DeadLetterWriter =>
(message, reason, deliveries) => {
  const topic = config.deadLetterTopic
  if (topic === undefined) return Effect.void
  const failed = (why: string) =>
    new DeadLetterFailed({ group, topic: config.topic, offset: message.offset, reason: why })
  if (publisher === undefined) {
    return Effect.fail(failed(`no Publisher in this process to write to ${topic} (provide one with the group's layer)`))
  }
  const headers: Array<readonly [string, string | Uint8Array]> = [
    ...(message.headers ?? []).map((h) => [h.name, h.value] as const),
    [DeadLetterHeader.reason, reason],
    [DeadLetterHeader.group, group],
    [DeadLetterHeader.topic, config.topic],
    [DeadLetterHeader.offset, `${message.offset}`],
    [DeadLetterHeader.deliveries, `${deliveries}`]
  ]
  return publisher.publishAcked(message.value, {
    topic,
    headers,
    ...(message.key === undefined ? {} : { key: message.key })
  }).pipe(
    Effect.asVoid,
    Effect.mapError((e) => failed(e.message))
  )
}
