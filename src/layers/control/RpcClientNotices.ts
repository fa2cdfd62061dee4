/**
 * The Rpc client's notices: frames the server sends every client or one, by tag. The client's
 * wake callback (`receive`, RpcClient.ts) hands a notice of a subscribed tag to `noticeInbox`;
 * one fiber publishes it to its tag's hub, which each subscriber's stream reads from the moment
 * it subscribed.
 */
import { Effect, Option, PubSub, Queue, Stream } from "effect"
import type { RpcNotice } from "../../services/control/Rpc.js"
import { describe, fromJson, type WireFrame } from "./RpcFrames.js"

export interface NoticeHubs {
  /**
   * Notices by tag, one hub per tag someone subscribed to: a notice nobody listens for (every
   * barrier release, on most clients) is dropped here, not woken through a stream.
   */
  readonly notices: Map<string, PubSub.PubSub<WireFrame>>
  /** Notices for a subscribed tag, read in the wake's callback, handed to a fiber that publishes them to their hub. */
  readonly noticeInbox: Queue.Queue<WireFrame>
}

/** Publishes the notices `receive` handed over to their tag's hub. */
export const publishNotices = (hubs: NoticeHubs) =>
  Effect.forever(Effect.flatMap(Queue.take(hubs.noticeInbox), (frame) => {
    const hub = hubs.notices.get(frame.tag)
    return hub === undefined ? Effect.void : PubSub.publish(hub, frame)
  }))

/** The hub of one notice tag, made at its first subscription. */
const hubOf = (hubs: NoticeHubs, tag: string) =>
  Effect.suspend(() => {
    const existing = hubs.notices.get(tag)
    if (existing !== undefined) return Effect.succeed(existing)
    return Effect.tap(PubSub.unbounded<WireFrame>(), (hub) => Effect.sync(() => hubs.notices.set(tag, hub)))
  })

/** Notices of one kind addressed to this client or to all, from the moment of subscribing; undecodable ones are logged and skipped. */
export const noticesOf = <Tag extends string, A, I>(hubs: NoticeHubs, notice: RpcNotice<Tag, A, I>) =>
  Effect.gen(function*() {
    const subscribed = yield* Stream.fromPubSub(yield* hubOf(hubs, notice.tag), { scoped: true })
    return subscribed.pipe(
      Stream.mapEffect((frame) =>
        fromJson(notice.schema, frame.json).pipe(
          Effect.map((value) => Option.some(value as A)),
          Effect.catchAll((e) =>
            Effect.as(Effect.logWarning(`rpc: undecodable ${notice.tag} notice: ${describe(e)}`), Option.none())
          )
        )
      ),
      Stream.filterMap((value) => value)
    )
  })
