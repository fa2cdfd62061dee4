/**
 * Reading a topic's named consumers from their subscriber lines (Consumers.ts tells the rules
 * that write them): which lines are consumers, their names, members and whether they were cut
 * off, and what each one stands at — what `Consumers.list` and a topic's description report.
 */
import { OWN_CONSUMER_PREFIX } from "../../services/log/Consumers.js"
import type { TopicConsumer } from "../../services/log/Topics.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import { isProcessAlive } from "../region/ProcessInfo.js"
import { lineTaken, type SubscriberArea } from "./Participants.js"
import { CONSUMER_NAME_BYTES, SubscriberLine } from "./Records.js"
import type { SubscriberLineView } from "./RecordViews.js"

/** A named consumer's `durable` word: holding retention, or cut off (1 is a durable cursor's, 0 an anonymous reader's). */
export const HOLDING = 2
export const CUT_OFF = 3

/** Lines of each region this process holds as a consumer's member, shared by every `consumersOver` of the region. */
const heldByRegion = new WeakMap<CxlMemoryShape, Set<number>>()

/** The lines of `region` this process holds as a consumer's member (a pid alone cannot tell two members in one process apart). */
export const heldLines = (region: CxlMemoryShape): Set<number> => {
  let held = heldByRegion.get(region)
  if (held === undefined) heldByRegion.set(region, held = new Set())
  return held
}

const decoder = new TextDecoder("utf-8", { ignoreBOM: true })

export const consumerName = (region: CxlMemoryShape, lines: SubscriberLineView, line: number): string => {
  const at = lines.nameAt(line)
  return decoder.decode(region.bytes.subarray(at, at + Math.min(CONSUMER_NAME_BYTES, lines.nameLength(line))))
}

export const isConsumerLine = (region: CxlMemoryShape, lines: SubscriberLineView, line: number): boolean => {
  region.invalidate(line, LINE_BYTES)
  const durable = lines.durable(line)
  return lineTaken(region, line) && (durable === HOLDING || durable === CUT_OFF)
}

/** Lines of topic `topic`'s consumers, in index order. */
export const consumerLinesOf = (
  region: CxlMemoryShape,
  area: SubscriberArea,
  lines: SubscriberLineView,
  topic: number
): Array<number> => {
  const found: Array<number> = []
  for (let s = 0; s < area.config.subscriberSlots; s++) {
    const line = area.subscriber(topic, s)
    if (isConsumerLine(region, lines, line)) found.push(line)
  }
  return found
}

/**
 * The member's pid if a live member holds the line, else 0 (a deleter's mark is no member). A
 * member is its pid and 16 bits of its start tag: a later process under the pid is not it.
 */
export const liveMember = (lines: SubscriberLineView, held: Set<number>, line: number): number => {
  const { pid, tag } = lines.memberClaim(line)
  if (pid <= 0) return 0
  if (pid === process.pid) return held.has(line) ? pid : 0
  return isProcessAlive(pid, tag, 16) ? pid : 0
}

export const isCutOff = (region: CxlMemoryShape, lines: SubscriberLineView, line: number): boolean => {
  region.invalidate(line + SubscriberLine.durable, 4)
  return lines.durable(line) === CUT_OFF
}

/**
 * Each consumer of topic `topic`, whose end is `end` now — an app's, or with `own` cxlog's own
 * (OWN_CONSUMER_PREFIX) — : its name, committed offset, lag, member and whether it was cut off.
 */
export const consumersOf = (
  region: CxlMemoryShape,
  area: SubscriberArea,
  lines: SubscriberLineView,
  topic: number,
  end: number,
  own = false
): Array<TopicConsumer> => {
  const held = heldLines(region)
  const ofKind = (line: number) => consumerName(region, lines, line).startsWith(OWN_CONSUMER_PREFIX) === own
  return consumerLinesOf(region, area, lines, topic).filter(ofKind).map((line) => {
    const committed = lines.committed(line)
    return {
      name: consumerName(region, lines, line),
      committed,
      lag: Math.max(0, end - committed),
      member: liveMember(lines, held, line),
      cutOff: isCutOff(region, lines, line)
    }
  })
}
