/**
 * A caller's side of a service: the first caller slot whose request ring has no live writer
 * becomes this process's (a dead caller's slot is taken over: a ring's writer is named by pid and
 * start time), and an Rpc client over it and the service's reply ring. A watch looks at the reply
 * ring's writer — the server — every `checkEveryMs`: when it died, stopped serving, or another
 * server took its place, the calls waiting end with `ServiceServerDied` (through one abort
 * signal every call shares, so a call costs no watch of its own), and calls made meanwhile fail
 * at once; once a server serves again, calls go to it.
 */
import { Effect, Schedule, type Scope } from "effect"
import { FrameTooLarge, type RingInspector } from "../../services/control/Rings.js"
import type { RpcClient, RpcClientOptions } from "../../services/control/Rpc.js"
import {
  type ServiceCallersBusy,
  type ServiceClient,
  ServiceRequestTooLarge,
  ServiceServerDied,
  type ServiceUnavailable
} from "../../services/ipc/Services.js"
import { isProcessAlive } from "../region/ProcessInfo.js"
import { claimCallerSlot } from "./CallerSlot.js"
import type { ServiceRings } from "./ServiceLayout.js"

/** The server as a caller knows it: the reply ring's writer occurrence and pid, and the signal its calls wait with. */
interface KnownServer {
  readonly occurrence: number
  readonly pid: number
  readonly calls: AbortController
}

/**
 * The reply ring's live writer (the server), or undefined: none ever, it closed the ring, or its
 * process is gone (by pid and start tag: a later process under the dead server's pid is not it).
 */
export const liveServer = (
  replies: RingInspector
): { readonly pid: number; readonly occurrence: number } | undefined => {
  const writer = replies.writer()
  return writer.occurrence !== 0 && !writer.closed && isProcessAlive(writer.pid, writer.start)
    ? { pid: writer.pid, occurrence: writer.occurrence }
    : undefined
}

const known = (server: { readonly pid: number; readonly occurrence: number }): KnownServer => ({
  ...server,
  calls: new AbortController()
})

export const connectCaller = (
  makeClient: (
    options: RpcClientOptions
  ) => Effect.Effect<RpcClient, { readonly _tag: string; readonly message: string }, Scope.Scope>,
  name: string,
  rings: ServiceRings,
  replies: RingInspector,
  server: { readonly pid: number; readonly occurrence: number },
  options: { readonly timeoutMs: number; readonly checkEveryMs: number }
): Effect.Effect<ServiceClient, ServiceCallersBusy | ServiceUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    // The client takes its request ring's writer first: a slot held by a live caller fails there, holding nothing.
    const client = yield* claimCallerSlot(
      name,
      rings.requests,
      (caller, requests) =>
        makeClient({
          client: caller,
          requests,
          replies: rings.replies,
          replySlot: caller,
          timeoutMs: options.timeoutMs
        })
    )
    let current = known(server)
    const look = Effect.sync(() => {
      const now = liveServer(replies)
      if (current.calls.signal.aborted) {
        if (now !== undefined) current = known(now)
      } else if (now === undefined || now.occurrence !== current.occurrence) {
        current.calls.abort("server gone")
        if (now !== undefined) current = known(now)
      }
    })
    yield* Effect.forkScoped(Effect.repeat(look, Schedule.spaced(options.checkEveryMs)))
    yield* Effect.addFinalizer(() => Effect.sync(() => current.calls.abort("disconnected")))
    return {
      name,
      caller: client.client,
      // Suspended: the server a call goes to is the one known when it runs (a retried call's too).
      call: (method, payload, callOptions) =>
        Effect.suspend(() => {
          const { calls, pid } = current
          // Known gone before the call: it is not sent, so it cannot have run.
          if (calls.signal.aborted) {
            return Effect.fail(new ServiceServerDied({ name, method: method.tag, pid, sent: false }))
          }
          return Effect.mapError(
            client.call(method, payload, {
              timeoutMs: callOptions?.timeoutMs ?? options.timeoutMs,
              signal: calls.signal
            }),
            (e) =>
              typeof e === "object" && e !== null && "_tag" in e && e._tag === "RpcAbandoned"
                ? new ServiceServerDied({ name, method: method.tag, pid })
                : e instanceof FrameTooLarge
                ? new ServiceRequestTooLarge({
                  name,
                  method: method.tag,
                  bytes: e.length,
                  maxFrameBytes: e.maxFrameBytes
                })
                : e
          )
        })
    } satisfies ServiceClient
  })
