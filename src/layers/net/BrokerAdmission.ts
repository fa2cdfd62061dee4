/**
 * What a broker lets each user and connection take: a user's connections (publishers and
 * subscribers alike, refused past its limit) and the rate budgets a connection's batches draw
 * on, the connection's own and its user's.
 */
import { Effect, type Scope } from "effect"
import { RateBudget, type UserRecord } from "./Auth.js"
import type { BrokerState, RateDraw, UserUse } from "./BrokerState.js"
import { WireViolation } from "./Control.js"
import type { Frame } from "./Frame.js"

/** The user's use, its budgets at the rates its record names now (a `cxlog user add` that changed them applies from its next connection). */
const useOf = (broker: BrokerState, user: UserRecord): UserUse => {
  const { messagesPerSecond = 0, bytesPerSecond = 0 } = user.limits ?? {}
  const budget = (current: RateBudget | undefined, perSecond: number) =>
    perSecond <= 0 ? undefined : current?.perSecond === perSecond ? current : new RateBudget(perSecond)
  const use = broker.userUse.get(user.name) ?? { connections: 0, messages: undefined, bytes: undefined }
  use.messages = budget(use.messages, messagesPerSecond)
  use.bytes = budget(use.bytes, bytesPerSecond)
  broker.userUse.set(user.name, use)
  return use
}

/** One of the user's connections to this broker, publisher or subscriber, for the scope's life; refused past its limit. */
export const holdConnection = (broker: BrokerState, user: UserRecord) =>
  Effect.gen(function*() {
    const use = useOf(broker, user)
    const limit = user.limits?.connections ?? 0
    if (limit > 0 && use.connections >= limit) {
      return yield* new WireViolation({
        code: "too-many-connections",
        detail: `user ${user.name} may hold ${limit} connection${limit === 1 ? "" : "s"} to this broker`
      })
    }
    use.connections++
    yield* Effect.addFinalizer(() => Effect.sync(() => void use.connections--))
    return use
  })

/** A publisher's connection admitted: the budgets its batches draw on, the connection's and (holding one of its connections) its user's. */
export const admitPublisher = (
  broker: BrokerState,
  user: UserRecord | undefined
): Effect.Effect<Array<RateDraw>, WireViolation, Scope.Scope> =>
  Effect.gen(function*() {
    const budgets: Array<RateDraw> = []
    const { messagesPerSecond = 0, bytesPerSecond = 0 } = broker.limits ?? {}
    if (messagesPerSecond > 0) {
      budgets.push({ budget: new RateBudget(messagesPerSecond), of: "messages", whose: "the connection's" })
    }
    if (bytesPerSecond > 0) {
      budgets.push({ budget: new RateBudget(bytesPerSecond), of: "bytes", whose: "the connection's" })
    }
    if (user !== undefined) {
      const use = yield* holdConnection(broker, user)
      const whose = `user ${user.name}'s`
      if (use.messages !== undefined) {
        budgets.push({ budget: use.messages, of: "messages", whose })
      }
      if (use.bytes !== undefined) {
        budgets.push({ budget: use.bytes, of: "bytes", whose })
      }
    }
    return budgets
  })

/** The first rate budget this batch would overdraw, as the connection's ERROR; undefined when all allow it. */
export const overLimit = (
  connection: { readonly budgets: ReadonlyArray<RateDraw> },
  frame: Frame
): WireViolation | undefined => {
  for (const { budget, of, whose } of connection.budgets) {
    if (budget.take(of === "messages" ? frame.messageCount : frame.payloadBytes)) continue
    return new WireViolation({
      code: "rate-limited",
      detail: `over ${whose} limit of ${budget.perSecond} ${of} a second`
    })
  }
  return undefined
}
