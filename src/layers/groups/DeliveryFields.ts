/**
 * The message part of a delivery (the `Delivery` fields a member reads), set once from the message
 * it carries: the base of a local member's deliveries (GroupDelivery.ts) and of a member's through
 * a broker (RemoteDelivery.ts), which differ only in how they settle; and what both refuse of a
 * settle before it is made.
 */
import { Effect } from "effect"
import { InvalidNakDelay, nakDelayProblem } from "../../services/groups/ConsumerGroups.js"
import type { MessageHeader } from "../../services/net/Subscriber.js"
import type { GroupMessage } from "./GroupReader.js"

export abstract class DeliveryFields {
  readonly offset: number
  readonly timestamp: number
  readonly key: Uint8Array | undefined
  readonly headers: ReadonlyArray<MessageHeader> | undefined
  readonly value: Uint8Array

  constructor(readonly group: string, readonly topic: string, message: GroupMessage, readonly deliveryCount: number) {
    this.offset = message.offset
    this.timestamp = message.timestamp
    this.key = message.key
    this.headers = message.headers
    this.value = message.value
  }

  /** A nak of `delayMs` refused (a delay a nak cannot have: nothing settled), or undefined: it may go on. */
  protected refusedNak(delayMs: number | undefined): Effect.Effect<never, InvalidNakDelay> | undefined {
    const reason = nakDelayProblem(delayMs)
    return reason === undefined
      ? undefined
      : Effect.fail(new InvalidNakDelay({ group: this.group, offset: this.offset, reason }))
  }
}
