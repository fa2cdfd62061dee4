/**
 * A remote member's deliveries (ConsumerGroupsRemote.ts): each is settled by a `settle` request
 * to the broker holding its member, over the link it came by. Acks of many (`ackAll`) travel as
 * one request per SETTLE_MAX_DELIVERIES, as a Redis client pipelines its XACKs: a member acking
 * what it took in one go pays one round trip, not one per message.
 *
 * A settle the broker cannot answer — the link broke (the broker left the member, or died with
 * it: the message is the group's again), no answer within the request timeout, or the user's
 * rights on the group gone — answers `false`, as a delivery taken over does: the message may be
 * delivered again (at least once). A settle the broker could not read is this client's fault: it dies.
 */
import { Effect } from "effect"
import type { DeadLetterFailed, Delivery, InvalidNakDelay } from "../../services/groups/ConsumerGroups.js"
import { DeliveryFields } from "./DeliveryFields.js"
import type { AckedTogether, AcksTogether } from "./GroupDelivery.js"
import type { DeliveredMessage } from "./GroupDeliveryFrame.js"
import type { GroupLink } from "./GroupLink.js"
import { SETTLE_MAX_DELIVERIES, SettleDelivery } from "./GroupProtocol.js"
import { termReason } from "./TermReason.js"

type Action = "ack" | "nak" | "term" | "inProgress" | "giveBack"
type Extra = { readonly delayMs?: number; readonly reason?: string }

/** How the deliveries of one membership settle: as member `member` of `link`. */
export class RemoteSettling implements AcksTogether {
  constructor(
    private readonly link: GroupLink,
    private readonly member: number,
    readonly group: string,
    readonly topic: string
  ) {}

  /** Settles deliveries `ids` alike: each one's outcome, in order. */
  settle(ids: ReadonlyArray<number>, action: Action, extra: Extra): Effect.Effect<Array<boolean>, DeadLetterFailed> {
    const one = (part: ReadonlyArray<number>) =>
      this.link.call(SettleDelivery, { member: this.member, deliveries: part, action, ...extra }).pipe(
        Effect.map((settled) => part.map((_, i) => settled[i] === true)),
        Effect.catchTags({
          GroupsUnavailable: () => Effect.succeed(part.map(() => false)),
          TopicForbidden: () => Effect.succeed(part.map(() => false)),
          InvalidGroupRequest: (e) => Effect.die(e)
        })
      )
    if (ids.length <= SETTLE_MAX_DELIVERIES) return one(ids)
    const parts: Array<ReadonlyArray<number>> = []
    for (let at = 0; at < ids.length; at += SETTLE_MAX_DELIVERIES) parts.push(ids.slice(at, at + SETTLE_MAX_DELIVERIES))
    return Effect.map(Effect.forEach(parts, one, { concurrency: "unbounded" }), (outcomes) => outcomes.flat())
  }

  /** Acks `deliveries` (this membership's), in as few requests as the bound allows. */
  readonly ackAll = (deliveries: ReadonlyArray<Delivery>): Effect.Effect<Array<boolean>> =>
    Effect.orDie(this.settle(deliveries.map((d) => (d as RemoteDelivery).id), "ack", {}))

  /** Gives `deliveries` (this membership's, never handed out) back to the group unseen, through the broker. */
  readonly giveBackAll = (deliveries: ReadonlyArray<Delivery>): Effect.Effect<void> =>
    Effect.asVoid(Effect.orDie(this.settle(deliveries.map((d) => (d as RemoteDelivery).id), "giveBack", {})))
}

export class RemoteDelivery extends DeliveryFields implements Delivery, AckedTogether {
  constructor(
    readonly acks: RemoteSettling,
    /** The delivery's id on its connection. */
    readonly id: number,
    message: DeliveredMessage
  ) {
    super(acks.group, acks.topic, message, message.deliveryCount)
  }

  private one(action: Action, extra: Extra): Effect.Effect<boolean, DeadLetterFailed> {
    return Effect.map(this.acks.settle([this.id], action, extra), (outcomes) => outcomes[0] === true)
  }

  get ack(): Effect.Effect<boolean> {
    return Effect.orDie(this.one("ack", {}))
  }

  get nak(): (delayMs?: number) => Effect.Effect<boolean, DeadLetterFailed | InvalidNakDelay> {
    return (delayMs) => this.refusedNak(delayMs) ?? this.one("nak", delayMs === undefined ? {} : { delayMs })
  }

  get term(): (reason?: string) => Effect.Effect<boolean, DeadLetterFailed> {
    return (reason) => this.one("term", reason === undefined ? {} : { reason: termReason(reason) })
  }

  get inProgress(): Effect.Effect<boolean> {
    return Effect.orDie(this.one("inProgress", {}))
  }
}
