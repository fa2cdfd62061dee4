/**
 * A delivery: one message a member was handed, with the entry that holds it in the group's
 * pending table and the control word that entry had when this member got it. Settling it is a
 * compare-and-swap against that word, so a delivery held past its ackWait and taken over by
 * another member settles nothing (`false`): the message is the other member's now.
 *
 * A member hands out a window of these per wake, so a delivery is one object whose settling
 * effects are made only when asked for (its `ack` is a few atomic operations, run at once by
 * `ackNow`: the Promise facade settles through it without running an effect per ack).
 */
import { Clock, Effect } from "effect"
import type { DeadLetterFailed, Delivery, InvalidNakDelay } from "../../services/groups/ConsumerGroups.js"
import { DeliveryFields } from "./DeliveryFields.js"
import type { DeadLetterWriter } from "./GroupDeadLetters.js"
import type { Counter, GroupConfig } from "./GroupLayout.js"
import type { GroupMembers } from "./GroupMembers.js"
import type { GroupPending } from "./GroupPending.js"
import type { GroupMessage } from "./GroupReader.js"
import { termReason } from "./TermReason.js"

/** What a member's deliveries settle through. */
export interface Settling {
  readonly group: string
  readonly config: GroupConfig
  readonly pending: GroupPending
  readonly members: GroupMembers
  readonly ref: number
  readonly count: (which: Counter, n?: number) => void
  readonly deadLetter: DeadLetterWriter
  /** `count` deliveries of `lane` are no longer held by this member (settled, or found taken over). */
  readonly done: (lane: number, count: number) => void
}

/** Where a delivery's message lies in the pending table. */
export interface Held {
  readonly slot: number
  readonly control: bigint
  readonly lane: number
  readonly deliveries: number
}

export class LocalDelivery extends DeliveryFields implements Delivery {
  /** The entry's control word as this member last wrote it: what settling swaps against. */
  private control: bigint
  private finished = false

  constructor(
    private readonly s: Settling,
    private readonly slot: number,
    control: bigint,
    private readonly lane: number,
    deliveries: number,
    private readonly message: GroupMessage
  ) {
    super(s.group, s.config.topic, message, deliveries)
    this.control = control
  }

  /** The ack, settled now: false when the message is no longer this member's, or was settled already. */
  ackNow(): boolean {
    if (this.finished) return false
    const s = this.s
    const settled = s.pending.settle(this.slot, this.control)
    if (settled) {
      s.members.countAcked(s.ref, 1)
      s.count("acked")
    }
    return this.finish(settled)
  }

  /**
   * The ack's compare-and-swap alone, for `ackAll`, which counts the acks and releases what they
   * held once for a run of deliveries: "unheld" when this delivery was finished already (nothing
   * to release), else whether it settled.
   */
  settleForRun(): boolean | "unheld" {
    if (this.finished) return "unheld"
    this.finished = true
    return this.s.pending.settle(this.slot, this.control)
  }

  /** Hands the message back unseen (`giveBackUnseen`): false when it is no longer this member's, or was settled already. */
  giveBack(): boolean {
    if (this.finished) return false
    return this.finish(this.s.pending.giveBack(this.slot, this.control))
  }

  /** The member's settling and this delivery's lane: what `ackAll` counts and releases by. */
  get settling(): Settling {
    return this.s
  }
  get laneHeld(): number {
    return this.lane
  }

  get ack(): Effect.Effect<boolean> {
    return Effect.sync(() => this.ackNow())
  }

  get nak(): (delayMs?: number) => Effect.Effect<boolean, DeadLetterFailed | InvalidNakDelay> {
    return (delayMs = 0) => {
      const refused = this.refusedNak(delayMs)
      if (refused !== undefined) return refused
      const { maxDeliver } = this.s.config
      return maxDeliver > 0 && this.deliveryCount >= maxDeliver
        ? this.deadLetter(`max-deliver: nak'd after ${this.deliveryCount} deliveries`)
        : Effect.map(this.reschedule(delayMs, "waiting"), (parked) => this.finish(parked))
    }
  }

  get term(): (reason?: string) => Effect.Effect<boolean, DeadLetterFailed> {
    return (reason = "terminated") => this.deadLetter(`term: ${termReason(reason)}`)
  }

  get inProgress(): Effect.Effect<boolean> {
    return this.reschedule(this.s.config.ackWaitMs, "delivered")
  }

  private finish(settled: boolean): boolean {
    if (!this.finished) {
      this.finished = true
      this.s.done(this.lane, 1)
    }
    return settled
  }

  private reschedule(delayMs: number, state: "delivered" | "waiting"): Effect.Effect<boolean> {
    return Effect.map(Clock.currentTimeMillis, (now) => {
      if (this.finished) return false
      const next = this.s.pending.reschedule(this.slot, this.control, now + delayMs, state)
      if (next === undefined) return this.finish(false)
      this.control = next
      return true
    })
  }

  /** The entry is held a full ackWait while the dead letter is written, then freed. */
  private deadLetter(reason: string): Effect.Effect<boolean, DeadLetterFailed> {
    const s = this.s
    return Effect.flatMap(
      this.reschedule(s.config.ackWaitMs, "delivered"),
      (kept) =>
        !kept ? Effect.succeed(false) : Effect.map(s.deadLetter(this.message, reason, this.deliveryCount), () => {
          const settled = s.pending.settle(this.slot, this.control)
          if (settled) s.count("deadLetters")
          return this.finish(settled)
        })
    )
  }
}

export const makeDelivery = (s: Settling, held: Held, message: GroupMessage): LocalDelivery =>
  new LocalDelivery(s, held.slot, held.control, held.lane, held.deliveries, message)

/**
 * Hands back deliveries a member took but never handed to the code that works on them (a
 * Promise member's jobs still buffered when it closes, a `cxlog consume --limit` past its
 * limit): the others take them at once, and these deliveries are not counted (a message given
 * back so is not nearer its `maxDeliver`, and not a redelivery). A local member's in place; a
 * remote member's in one request to its broker per membership (AckedTogether), which gives them
 * back as its member; one whose request fails is left to the broker, which hands it on as it
 * leaves the member (counted then).
 */
export const giveBackUnseen = (deliveries: Iterable<Delivery>): Effect.Effect<void> =>
  Effect.suspend(() => {
    const together = new Map<AcksTogether, Array<Delivery>>()
    for (const delivery of deliveries) {
      if (delivery instanceof LocalDelivery) delivery.giveBack()
      else if (ackedTogether(delivery)) {
        const batch = together.get(delivery.acks)
        if (batch === undefined) together.set(delivery.acks, [delivery])
        else batch.push(delivery)
      }
    }
    return Effect.forEach(together, ([acks, batch]) => acks.giveBackAll(batch), { discard: true })
  })

/**
 * Deliveries whose acks go many at once (a remote member's: one request to its broker for all of
 * them): `acks` is the same object for every delivery it can ack together.
 */
export interface AckedTogether {
  readonly acks: AcksTogether
}

export interface AcksTogether {
  /** Acks `deliveries` (each one's `acks` is this) as each one's own `ack` would: each one's outcome, in order. */
  readonly ackAll: (deliveries: ReadonlyArray<Delivery>) => Effect.Effect<Array<boolean>>
  /** Gives `deliveries` (each one's `acks` is this) back unseen, as `giveBackUnseen` says. */
  readonly giveBackAll: (deliveries: ReadonlyArray<Delivery>) => Effect.Effect<void>
}

const ackedTogether = (delivery: Delivery): delivery is Delivery & AckedTogether =>
  (delivery as Partial<AckedTogether>).acks !== undefined

/**
 * Acks each of `deliveries`, as each one's own `ack` would, in one effect: for a member that
 * handles what it is given a chunk at a time (`Stream.runForEachChunk`). A local member's are
 * settled at once in one pass — a compare-and-swap each, the acks counted and what they held
 * released once per run of one member's deliveries of one lane, without an effect per message;
 * a remote member's in one request per member (AckedTogether); any other through its own `ack`,
 * one after another. Each one's outcome, in the order given.
 */
export const ackAll = (deliveries: Iterable<Delivery>): Effect.Effect<Array<boolean>> =>
  Effect.suspend(() => {
    const outcomes: Array<boolean> = []
    const together: Together = new Map()
    const others: Array<{ readonly at: number; readonly delivery: Delivery }> = []
    const run = new AckRun()
    for (const delivery of deliveries) {
      if (delivery instanceof LocalDelivery) {
        outcomes.push(run.ack(delivery))
        continue
      }
      if (ackedTogether(delivery)) {
        let batch = together.get(delivery.acks)
        if (batch === undefined) together.set(delivery.acks, batch = { at: [], deliveries: [] })
        batch.at.push(outcomes.length)
        batch.deliveries.push(delivery)
      } else {
        others.push({ at: outcomes.length, delivery })
      }
      outcomes.push(false)
    }
    run.flush()
    return together.size === 0 && others.length === 0
      ? Effect.succeed(outcomes)
      : Effect.as(settleApart(outcomes, together, others), outcomes)
  })

type Together = Map<AcksTogether, { at: Array<number>; deliveries: Array<Delivery> }>

/**
 * The deliveries `ackAll` does not settle in place: each membership's in one request (a chunk of
 * one membership, the usual case, runs its request as it is: `forEach` with a concurrency forks a
 * fiber to run the requests and one for each, once the largest cost of a remote member's chunk),
 * then the others' own acks in turn; each outcome into `outcomes` at its place.
 */
const settleApart = (
  outcomes: Array<boolean>,
  together: Together,
  others: ReadonlyArray<{ readonly at: number; readonly delivery: Delivery }>
): Effect.Effect<void> => {
  const settleTogether = ([acks, batch]: [AcksTogether, { at: Array<number>; deliveries: Array<Delivery> }]) =>
    Effect.map(acks.ackAll(batch.deliveries), (acked) => acked.forEach((ok, i) => (outcomes[batch.at[i]!] = ok)))
  const groups = Array.from(together)
  const requests = groups.length === 1
    ? settleTogether(groups[0]!)
    : Effect.forEach(groups, settleTogether, { concurrency: "unbounded", discard: true })
  return others.length === 0 ? Effect.asVoid(requests) : Effect.zipRight(
    requests,
    Effect.forEach(others, ({ at, delivery }) => Effect.map(delivery.ack, (acked) => (outcomes[at] = acked)), {
      discard: true
    })
  )
}

/** Acks of one member's deliveries of one lane, counted and released together. */
class AckRun {
  private settling: Settling | undefined
  private lane = 0
  private released = 0
  private acked = 0

  ack(delivery: LocalDelivery): boolean {
    if (delivery.settling !== this.settling || delivery.laneHeld !== this.lane) {
      this.flush()
      this.settling = delivery.settling
      this.lane = delivery.laneHeld
    }
    const outcome = delivery.settleForRun()
    if (outcome === "unheld") return false
    this.released++
    if (outcome) this.acked++
    return outcome
  }

  flush(): void {
    const s = this.settling
    if (s === undefined) return
    if (this.acked > 0) {
      s.members.countAcked(s.ref, this.acked)
      s.count("acked", this.acked)
    }
    if (this.released > 0) s.done(this.lane, this.released)
    this.acked = 0
    this.released = 0
  }
}
