/**
 * The replies a server keeps for requests sent again (`Kind.retry`). A client whose reply-ring
 * reader was reaped (it did not run for longer than the stale bound: a long synchronous task, a
 * stopped process continued) attaches again at the ring's head, past whatever the server wrote
 * meanwhile, and sends each call still waiting again. The server must not run it twice (a topic
 * created twice fails the second time; a barrier arrival counts once): it answers a retry with the
 * reply it kept, or nothing while the first run is still going (that reply will come), and runs
 * only a request it never saw.
 *
 * A server that took another's place (a standby coordinator after a takeover) reads each request
 * ring from where it stood when it started: requests written before then never reached it, and
 * their clients send them again once told of the takeover. Their ids are below the first fresh
 * request it saw from that process, which tells them from requests it ran and no longer keeps.
 *
 * Request ids grow per client process, so a fresh request whose id is not above the highest seen
 * comes from a new process in that client's slot: what the old one left is forgotten.
 */
import type { OutFrame } from "./RpcFrames.js"

/** Replies kept per client: far more than the calls one process has waiting at once. */
export const KEPT_REPLIES = 64

const RUNNING = "running"

/** What a retry finds: the reply to send again, the first run still going, never seen, or ran with its reply no longer kept. */
export type RetryOutcome = OutFrame | "running" | "unseen" | "lost"

class ClientReplies {
  /** By request id, oldest first: a running request or its reply. */
  readonly byId = new Map<number, OutFrame | typeof RUNNING>()
  /** The highest fresh request id seen from this client's process, and its first (Infinity before one). */
  highest = 0
  firstFresh = Infinity
}

export class ReplyMemo {
  private readonly clients = new Map<number, ClientReplies>()

  /** A request from `client` is about to run: a fresh one, or one sent again that this server never saw (`retried`). */
  started(client: number, requestId: number, retried = false): void {
    let replies = this.clients.get(client)
    if (replies === undefined) this.clients.set(client, replies = new ClientReplies())
    if (!retried) {
      if (requestId <= replies.highest) {
        replies.byId.clear()
        replies.firstFresh = Infinity
      }
      replies.highest = requestId
      replies.firstFresh = Math.min(replies.firstFresh, requestId)
    }
    replies.byId.set(requestId, RUNNING)
    if (replies.byId.size > KEPT_REPLIES) replies.byId.delete(replies.byId.keys().next().value!)
  }

  /** The reply to `client`'s request was written (kept only while the request is: a reply to an older one is not). */
  replied(client: number, frame: OutFrame): void {
    const replies = this.clients.get(client)
    if (replies?.byId.has(frame.requestId) === true) replies.byId.set(frame.requestId, frame)
  }

  /** What to do with `client`'s request `requestId` sent again. */
  retry(client: number, requestId: number): RetryOutcome {
    const replies = this.clients.get(client)
    const kept = replies?.byId.get(requestId)
    if (kept === RUNNING) return "running"
    if (kept !== undefined) return kept
    return replies === undefined || requestId > replies.highest || requestId < replies.firstFresh ? "unseen" : "lost"
  }
}
