/**
 * What an Rpc server tells a client whose request ring it found corrupt (ReadPastCorruption.ts):
 * the stretch of the ring it never read. The client fails the calls whose requests lay there with
 * `RpcRequestUnread` at once, rather than at their bounds; its later calls are read as before.
 */
import { Exit, Schema } from "effect"
import type { RingBreak } from "../../services/control/Rings.js"
import { notice, RpcRequestUnread } from "../../services/control/Rpc.js"

export const RequestsUnread = notice(
  "cxlog/requestsUnread",
  Schema.Struct({
    /** The first position not read. */
    from: Schema.Number,
    /** Where reading resumed; absent when nothing more is read from the ring. */
    to: Schema.optional(Schema.Number),
    /** The ring's corruption, as the reader found it. */
    reason: Schema.String
  })
)

export const unreadNotice = ({ error, resumedAt }: RingBreak): typeof RequestsUnread.schema.Type => ({
  from: error.position,
  ...(resumedAt === undefined ? {} : { to: resumedAt }),
  reason: error.message
})

/** A call waiting for its reply, as far as this needs: where its request's frame ended in the ring (-1: not written). */
interface SentCall {
  readonly method: { readonly tag: string }
  readonly requestId: number
  readonly sentThrough: number
  readonly settle: (outcome: Exit.Exit<unknown, unknown>) => void
}

/** Fails each call whose request lay in the stretch the server never read. */
export const failUnread = (
  calls: Iterable<SentCall>,
  unread: typeof RequestsUnread.schema.Type
): void => {
  const to = unread.to ?? Infinity
  for (const call of [...calls]) {
    if (call.sentThrough > unread.from && call.sentThrough <= to) {
      call.settle(
        Exit.fail(new RpcRequestUnread({ method: call.method.tag, requestId: call.requestId, reason: unread.reason }))
      )
    }
  }
}
