/**
 * Which offsets a subscription through brokers may commit, of one topic (RemoteSubscription.ts)
 * or of several (RemoteTopics.ts): only a named consumer commits, and only from what it committed
 * up to what it was delivered. One rule, so both refuse a commit alike.
 */
import { CommitRejected } from "../../services/net/Subscriber.js"

/** Why a commit at `offset` of `topic` is refused, or undefined when it may go. */
export const commitRefusal = (
  named: boolean,
  topic: string,
  offset: number,
  committed: number,
  delivered: number
): CommitRejected | undefined => {
  if (!named) {
    return new CommitRejected({
      topic,
      reason: "an anonymous subscription has nothing to commit (subscribe with a consumer name)"
    })
  }
  if (!Number.isSafeInteger(offset) || offset < committed || offset > delivered) {
    return new CommitRejected({
      topic,
      reason: `offset ${offset} is outside [${committed}, ${delivered}] (committed, delivered)`
    })
  }
  return undefined
}
