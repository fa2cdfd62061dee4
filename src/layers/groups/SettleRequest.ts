/**
 * A `settle` request read without its Schemas when it has exactly their shape. A remote member's
 * acks come as one such request per chunk it took, and the Schemas' checks, an Either per
 * delivery id, cost the broker as much as settling the chunk. Anything else goes through the
 * Schemas, which name what is wrong with it: another operation, text that is not JSON, or an
 * input this check does not take.
 */
import { SETTLE_MAX_DELIVERIES, type SettleDelivery } from "./GroupProtocol.js"
import { TERM_REASON_MAX_CHARS } from "./TermReason.js"

export type SettleInput = typeof SettleDelivery.payload.Type

const ACTIONS: ReadonlySet<unknown> = new Set<SettleInput["action"]>(["ack", "nak", "term", "inProgress"])
const text = new TextDecoder("utf-8", { fatal: true })
const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** The input as SettleDelivery's Schema decodes it (the known properties only), or undefined when it would not. */
export const plainSettleInput = (input: unknown): SettleInput | undefined => {
  if (!isRecord(input)) return undefined
  const { action, deliveries, delayMs, member, reason } = input
  if (!Number.isSafeInteger(member) || !ACTIONS.has(action) || !Array.isArray(deliveries)) return undefined
  if (deliveries.length < 1 || deliveries.length > SETTLE_MAX_DELIVERIES) return undefined
  for (const id of deliveries) if (!Number.isSafeInteger(id)) return undefined
  if ("delayMs" in input && !(typeof delayMs === "number" && delayMs >= 0)) return undefined
  if ("reason" in input && !(typeof reason === "string" && reason.length <= TERM_REASON_MAX_CHARS)) return undefined
  return {
    member: member as number,
    deliveries: deliveries as Array<number>,
    action: action as SettleInput["action"],
    ...("delayMs" in input ? { delayMs: delayMs as number } : {}),
    ...("reason" in input ? { reason: reason as string } : {})
  }
}

/** A GROUP_REQUEST's payload as a `settle` whose input has its Schema's shape, or undefined (then decode it with the Schemas). */
export const plainSettleRequest = (payload: Uint8Array): SettleInput | undefined => {
  let body: unknown
  try {
    body = JSON.parse(text.decode(payload))
  } catch {
    return undefined
  }
  if (!isRecord(body) || body["operation"] !== "settle") return undefined
  return plainSettleInput(body["input"])
}
