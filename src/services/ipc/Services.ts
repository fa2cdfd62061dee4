/**
 * Services: request/reply between the processes of one host, by name — cxlog's Rpc (methods
 * declared with `Rpc.method`, handlers with `Rpc.handle`: Schema-validated payloads, typed
 * errors, timeouts, deferred replies) without a fixed client list. A service is a named object
 * of kind "service" in the region's directory; its extent holds one reply ring, written by the
 * one server, and a request ring per caller slot, which callers take as they connect (a dead
 * caller's slot is taken again: a ring's writer is named by pid and start time). One server per
 * name: a second is refused with `ServiceTaken`; a dead server's service is taken over by the
 * next `serve`. docs/ipc.md has the design.
 *
 * A service may instead carry frames the application encodes itself (`serveFrames`,
 * `connectFrames`): the same object, caller slots and server watch, with the rings as a message
 * transport — what @effect/rpc's protocol runs over (src/layers/ipc/EffectRpc.ts).
 */
import { Context, type Effect, Schema, type Scope } from "effect"
import type { AnyRpcMethod, Failure, Payload, RpcCallError, RpcHandler, Success } from "../control/Rpc.js"
import type { HeadUnavailable } from "../log/HeadWatch.js"
import type { DirectoryEntry } from "../region/Directory.js"

/** A service's shape, fixed when it is created (a later serve or connect finds it as it is). */
export interface ServiceShape {
  /** Request rings: how many callers may be connected at once. */
  readonly callerSlots: number
  /** Bytes of each request ring and of the reply ring: a request or reply is at most a quarter of it. */
  readonly ringBytes: number
}

/** A serve's options: the shape a service it creates gets, and who hears of its callers' broken request rings. */
export interface ServeOptions extends Partial<ServiceShape> {
  /**
   * Told once per break of a caller's request ring (`ServiceRequestsBroken`): the server read on
   * past the damage, and the calls whose requests it never read failed at once with
   * `RpcRequestUnread`. Logged as a warning when not given.
   */
  readonly onBroken?: (broken: ServiceRequestsBroken) => Effect.Effect<void>
}

export interface ConnectOptions {
  /** Bound of a call that names none (default `CXLOG_SERVICE_CALL_TIMEOUT_MS`, 10 s). */
  readonly timeoutMs?: number
}

/** A caller's side of a service: one caller slot held until the scope closes. */
export interface ServiceClient {
  readonly name: string
  /** The caller slot this process holds (its request ring). */
  readonly caller: number
  /**
   * Calls `method` on the service's server. Fails with the method's typed failure, an Rpc error
   * (`RpcTimeout` after the bound, `RpcInvalidPayload`, …), or `ServiceServerDied` when the server
   * died (or stopped) while the call waited, or was not running when it was made.
   */
  readonly call: <M extends AnyRpcMethod>(
    method: M,
    payload: Payload<M>,
    options?: { readonly timeoutMs?: number }
  ) => Effect.Effect<Success<M>, Failure<M> | ServiceCallError>
}

/** The serving side: the service is this process's until the scope closes. */
export interface ServedService {
  readonly name: string
  readonly entry: DirectoryEntry
  readonly shape: ServiceShape
}

/** A service as `list` finds it: its server's pid, or none. */
export interface ServiceInfo {
  readonly name: string
  /** The live server's pid; undefined when no process serves it now. */
  readonly serverPid: number | undefined
}

/**
 * One caller's connection to a frame service: its caller slot and the occurrence of its hold on
 * that slot's request ring (a caller that left and the one that took its slot since differ).
 */
export interface ServiceConnection {
  readonly caller: number
  readonly occurrence: number
}

/** What a frame service's server does with its callers' frames. */
export interface FrameServerHandlers {
  /** A frame from `from`, in order per connection; `frame` is a view valid until the effect completes. */
  readonly onFrame: (from: ServiceConnection, frame: Uint8Array) => Effect.Effect<void>
  /**
   * `from` closed, died, or another caller took its slot: no more frames come from it. Told too
   * when its request ring was read past a damaged stretch (its frames there are lost; the frames it
   * sends after come as from a new connection).
   */
  readonly onLeft: (from: ServiceConnection) => Effect.Effect<void>
  /** Told once per break of a caller's request ring (as `ServeOptions.onBroken`); logged as a warning when not given. */
  readonly onBroken?: (broken: ServiceRequestsBroken) => Effect.Effect<void>
}

/** The serving side of a frame service, until the scope closes. */
export interface FrameServer extends ServedService {
  /** Sends one frame to a connection (a caller's reader wakes for it alone). */
  readonly send: (to: ServiceConnection, frame: string | Uint8Array) => Effect.Effect<void, ServiceFrameNotSent>
}

/** What a frame service's caller does with the frames its server sends it. */
export interface FrameClientHandlers {
  /** A frame addressed to this connection, in the order sent; a view valid until the effect completes. */
  readonly onFrame: (frame: Uint8Array) => Effect.Effect<void>
  /**
   * Frames sent before now may never come: the server died or stopped (`ServiceServerDied`),
   * this process did not run for so long that its reader slot was reaped (`ServiceRepliesLost`),
   * or the server read past a damaged stretch of this connection's request ring, and the frames
   * it sent there were never read (`ServiceRequestsBroken`). Frames sent after it are delivered
   * again once a server serves.
   */
  readonly onBroken: (error: ServiceServerDied | ServiceRepliesLost | ServiceRequestsBroken) => Effect.Effect<void>
}

/** A caller's side of a frame service: one caller slot held until the scope closes. */
export interface FrameClient {
  readonly name: string
  readonly connection: ServiceConnection
  /** Sends one frame to the server; `ServiceServerDied` at once while no server serves. */
  readonly send: (frame: string | Uint8Array) => Effect.Effect<void, ServiceServerDied | ServiceFrameNotSent>
}

export interface ServicesShape {
  /**
   * Serves `handlers` under `name` until the scope closes, creating the service with the shape
   * `options` gives if there is none. Refused with `ServiceTaken` while another live process serves it; a
   * service whose server died (or stopped) is taken over. A service not found is created by the
   * head (for a member of the region, through its coordinator): `HeadUnavailable` when it is gone.
   * `R` defaults to never: with no handler to infer it from (an empty list), the call needs
   * nothing, rather than `unknown`.
   */
  readonly serve: <R = never>(
    name: string,
    handlers: ReadonlyArray<RpcHandler<R>>,
    options?: ServeOptions
  ) => Effect.Effect<ServedService, ServiceOpenError | ServiceTaken | HeadUnavailable, Scope.Scope | R>
  /**
   * Connects to the service `name`: takes a caller slot for the scope. `ServiceNotFound` when no
   * such service was ever served, `ServiceNotServed` when no live process serves it now.
   */
  readonly connect: (
    name: string,
    options?: ConnectOptions
  ) => Effect.Effect<
    ServiceClient,
    ServiceOpenError | ServiceNotFound | ServiceNotServed | ServiceCallersBusy,
    Scope.Scope
  >
  /**
   * `serve` for a service whose frames the application encodes itself: refused with
   * `ServiceUnavailable` when `name` is a service of cxlog Rpc methods (and the other way round).
   */
  readonly serveFrames: (
    name: string,
    handlers: FrameServerHandlers,
    shape?: Partial<ServiceShape>
  ) => Effect.Effect<FrameServer, ServiceOpenError | ServiceTaken | HeadUnavailable, Scope.Scope>
  /** `connect` to a frame service: its server's frames for this connection go to `handlers`. */
  readonly connectFrames: (
    name: string,
    handlers: FrameClientHandlers,
    options?: ConnectOptions
  ) => Effect.Effect<
    FrameClient,
    ServiceOpenError | ServiceNotFound | ServiceNotServed | ServiceCallersBusy,
    Scope.Scope
  >
  /** Every service, with its live server's pid if it has one. */
  readonly list: Effect.Effect<ReadonlyArray<ServiceInfo>>
  /**
   * Removes the service `name` from the region, giving its memory and directory entry back: a
   * later serve makes a new one. `ServiceInUse` (naming the pids) while a live process serves it or
   * is connected to it; `ServiceNotFound` when there is none.
   */
  readonly remove: (
    name: string
  ) => Effect.Effect<void, ServiceNotFound | ServiceInUse | ServiceUnavailable | HeadUnavailable>
}

export class Services extends Context.Tag("cxlog/Services")<Services, ServicesShape>() {}

export class ServiceTaken extends Schema.TaggedError<ServiceTaken>()("ServiceTaken", {
  name: Schema.String,
  /** The process that serves it now. */
  pid: Schema.Int
}) {
  override get message() {
    return `service ${JSON.stringify(this.name)} is served by live process ${this.pid} already`
  }
}

export class ServiceInUse extends Schema.TaggedError<ServiceInUse>()("ServiceInUse", {
  name: Schema.String,
  pids: Schema.Array(Schema.Int)
}) {
  override get message() {
    return `service ${JSON.stringify(this.name)} is in use by live process${this.pids.length === 1 ? "" : "es"} ${
      this.pids.join(", ")
    } (serving it or connected to it): it can be removed once they close it`
  }
}

export class ServiceNotFound extends Schema.TaggedError<ServiceNotFound>()("ServiceNotFound", {
  name: Schema.String
}) {
  override get message() {
    return `no service named ${JSON.stringify(this.name)}: no process ever served it`
  }
}

export class ServiceNotServed extends Schema.TaggedError<ServiceNotServed>()("ServiceNotServed", {
  name: Schema.String
}) {
  override get message() {
    return `service ${JSON.stringify(this.name)} has no live server now`
  }
}

export class ServiceCallersBusy extends Schema.TaggedError<ServiceCallersBusy>()("ServiceCallersBusy", {
  name: Schema.String,
  callerSlots: Schema.Int,
  /** The caller slots whose request rings are damaged (no caller can take them until the service is removed). */
  damaged: Schema.optional(Schema.Array(Schema.Int))
}) {
  override get message() {
    const service = `service ${JSON.stringify(this.name)}`
    return this.damaged === undefined
      ? `${service}: all ${this.callerSlots} caller slots are held by live processes`
      : `${service}: its ${
        this.callerSlots - this.damaged.length
      } caller slots not damaged are held by live processes (the request rings of slots ${
        this.damaged.join(", ")
      } are damaged: Services.remove frees its name)`
  }
}

/** The service could not be found or made (the directory refused it), or its object does not read as a service. */
export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()("ServiceUnavailable", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `service ${JSON.stringify(this.name)} could not be opened: ${this.reason}`
  }
}

/** The server that a call was made to died or stopped serving before it replied (the request may have run). */
export class ServiceServerDied extends Schema.TaggedError<ServiceServerDied>()("ServiceServerDied", {
  name: Schema.String,
  method: Schema.String,
  /** The server's pid as the caller last knew it (0: none was serving). */
  pid: Schema.Int,
  /** Whether the request had been sent: a call made once the caller knew its server gone is not (it never ran). */
  sent: Schema.optionalWith(Schema.Boolean, { default: () => true })
}) {
  override get message() {
    return `service ${JSON.stringify(this.name)}: ${this.method}: ${
      this.sent
        ? `its server (pid ${this.pid}) died or stopped before it replied; the request may have run`
        : `its server (pid ${this.pid}) died or stopped and no server serves it yet; the request was not sent`
    }`
  }
}

/** A frame found no room in its ring within the bound, or is larger than a ring takes. */
export class ServiceFrameNotSent extends Schema.TaggedError<ServiceFrameNotSent>()("ServiceFrameNotSent", {
  name: Schema.String,
  bytes: Schema.Int,
  reason: Schema.String
}) {
  override get message() {
    return `service ${JSON.stringify(this.name)}: a ${this.bytes}-byte frame was not sent: ${this.reason}`
  }
}

/**
 * This caller's reader slot on the reply ring was reaped (its process did not run for too long),
 * or it read past a corrupt stretch of the ring (`reason`): frames sent meanwhile are lost.
 */
export class ServiceRepliesLost extends Schema.TaggedError<ServiceRepliesLost>()("ServiceRepliesLost", {
  name: Schema.String,
  /** The ring's corruption that this caller read past; absent for a reap. */
  reason: Schema.optional(Schema.String)
}) {
  override get message() {
    return `service ${JSON.stringify(this.name)}: ${
      this.reason === undefined
        ? "this process did not run for so long that its reply reader was reaped"
        : `its reply reader read past a corrupt stretch of the reply ring (${this.reason})`
    }; replies sent meanwhile are lost`
  }
}

/**
 * A caller's request ring read as corrupt by the server (what a crashed or buggy process could
 * leave in the region): the server read on from the ring's head, and the requests between were
 * never read (a caller of Rpc methods has those calls fail with `RpcRequestUnread`, a frame
 * caller is told `onBroken`).
 */
export class ServiceRequestsBroken extends Schema.TaggedError<ServiceRequestsBroken>()("ServiceRequestsBroken", {
  name: Schema.String,
  caller: Schema.Int,
  /** The position of the damage, and what is wrong there. */
  position: Schema.Number,
  reason: Schema.String,
  /** Where reading went on (the requests from `position` to it were never read); absent when nothing more is read from the ring. */
  resumedAt: Schema.optional(Schema.Number)
}) {
  override get message() {
    return `service ${
      JSON.stringify(this.name)
    }: caller slot ${this.caller}'s request ring is corrupt: ${this.reason}; ${
      this.resumedAt === undefined
        ? "nothing more is read from it (remove the service and serve it again to use that slot)"
        : `the requests from position ${this.position} to ${this.resumedAt} were never read (their callers are told), and reading goes on from there`
    }`
  }
}

export type ServiceOpenError = ServiceUnavailable
/** A request larger than a service's rings admit: nothing was sent. */
export class ServiceRequestTooLarge extends Schema.TaggedError<ServiceRequestTooLarge>()("ServiceRequestTooLarge", {
  name: Schema.String,
  method: Schema.String,
  bytes: Schema.Int,
  maxFrameBytes: Schema.Int
}) {
  override get message() {
    return `service ${
      JSON.stringify(this.name)
    }: a ${this.bytes}-byte request of ${this.method} exceeds its ${this.maxFrameBytes}-byte limit (a quarter of the service's ringBytes, fixed when it was made: its serve's ringBytes, else CXLOG_SERVICE_RING_BYTES); nothing was sent`
  }
}

export type ServiceCallError =
  | Exclude<RpcCallError, { readonly _tag: "RpcAbandoned" | "FrameTooLarge" }>
  | ServiceServerDied
  | ServiceRequestTooLarge
