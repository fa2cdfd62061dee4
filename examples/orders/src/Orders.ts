/**
 * The orders service's domain: placing an order publishes it to the `orders` topic, and the
 * worker folds the topic, in its one total order, into per-customer totals. Both ask for cxlog's
 * services (`Publisher`, `Subscriber`) and nothing else, so main.ts runs them over a cxlog server
 * and the tests over cxlog/testing's in-memory cluster.
 */
import { Publisher, Subscriber } from "cxlog"
import { Context, Effect, Ref, Schema } from "effect"

export const TOPIC = "orders"

export const Order = Schema.Struct({
  customer: Schema.NonEmptyString,
  amount: Schema.Number.pipe(Schema.positive())
})
export type Order = typeof Order.Type

const encodeOrder = Schema.encodeSync(Schema.parseJson(Order))
const decodeOrder = Schema.decodeUnknownEither(Schema.parseJson(Order))

/** Totals by customer, as far as the worker has read. */
export class Totals extends Context.Tag("orders/Totals")<Totals, Ref.Ref<Record<string, number>>>() {
  static readonly make = Ref.make<Record<string, number>>({})
}

/** Places an order: published, and acknowledged once it has its place in the order. */
export const placeOrder = (order: Order) =>
  Effect.gen(function*() {
    const publisher = yield* Publisher
    const ack = yield* publisher.publishAcked(new TextEncoder().encode(encodeOrder(order)))
    return ack.offset
  })

/** Reads the topic from the start, for ever, adding each order to its customer's total; one that does not decode is logged and skipped. */
export const worker = Effect.gen(function*() {
  const totals = yield* Totals
  const subscription = yield* (yield* Subscriber).subscribe(TOPIC, { from: "earliest" })
  const decoder = new TextDecoder()
  for (;;) {
    const batch = yield* subscription.pull
    const orders = batch.map((message) => ({
      offset: message.offset,
      order: decodeOrder(decoder.decode(message.payload))
    }))
    for (const { offset, order } of orders) {
      if (order._tag === "Left") yield* Effect.logWarning(`offset ${offset}: not an order, skipped`)
      else {yield* Ref.update(
          totals,
          (t) => ({ ...t, [order.right.customer]: (t[order.right.customer] ?? 0) + order.right.amount })
        )}
    }
  }
}).pipe(Effect.scoped)
