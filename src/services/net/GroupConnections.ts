/**
 * GroupConnections: what a broker serves a connection that opens with GROUP by (docs/protocol.md,
 * "Consumer groups"). The broker knows the wire and its users; the consumer groups sit above it
 * (layers/groups), so a broker given this service (the groups' own layer, GroupServer.ts, over
 * the region's `ConsumerGroups`) hands such a connection over to it, and one without it refuses them.
 */
import { Context, type Effect, type Scope } from "effect"
import type { Socket } from "node:net"
import type { AuthServer, UserRecord } from "../../layers/net/Auth.js"
import type { WireViolation } from "../../layers/net/Control.js"
import type { Frame } from "../../layers/net/Frame.js"

/** What the broker lends a groups' connection: who it is, its users, and its limits. */
export interface GroupConnectionContext {
  readonly brokerId: number
  /** The broker's authentication, when it authenticates its clients. */
  readonly auth: AuthServer | undefined
  /** Counts the connection against its user's limit for the scope's life (shared with its other connections). */
  readonly holdConnection: (user: UserRecord) => Effect.Effect<unknown, WireViolation, Scope.Scope>
  /** A connection with no member that sends no request this long is closed (`idle-timeout`); 0 never. */
  readonly idleTimeoutMs: number
}

/**
 * Serves one connection whose first frame, `first`, is its GROUP; `nextFrame` gives its later
 * frames (AUTH and GROUP_REQUEST only). `opened` runs as the GROUP_READY goes out. Returns when
 * the client closes; fails with the violation the broker should send. An admin connection
 * (AdminServer.ts) is served the same way, from its ADMIN.
 */
export type ServeConnection = (
  socket: Socket,
  first: Frame,
  nextFrame: Effect.Effect<Frame | undefined, WireViolation>,
  opened: () => void
) => Effect.Effect<void, WireViolation, Scope.Scope>

export interface GroupConnectionsShape {
  readonly server: (context: GroupConnectionContext) => ServeConnection
}

export class GroupConnections extends Context.Tag("cxlog/GroupConnections")<
  GroupConnections,
  GroupConnectionsShape
>() {}
