/**
 * Rpc over Rings (either Rings layer): the server (RpcServer, its replies in RpcReplies, written
 * by the reply ring's single writer in RpcReplyChannel) and the client (RpcClient), exchanging
 * RpcFrames. A reply wakes only its client's reader slot when the request named it; notices
 * wake every reader.
 *
 * A call's path: `call` → `requestFrame` (written to the client's request ring) → the server's
 * `dispatch` → `runHandler` → `reply` → `sendReply` (the reply ring's single writer) → the
 * client's `receive` → the pending call's `deliver` → `decodeReply`, which resumes the caller.
 */
import { Effect, Layer } from "effect"
import { Rings } from "../../services/control/Rings.js"
import { Rpc, type RpcShape } from "../../services/control/Rpc.js"
import { client } from "./RpcClient.js"
import { serve } from "./RpcServer.js"

// What the Rpc tests look at besides the layer.
export { cachedTags } from "./RpcFrames.js"
export { wakeList } from "./RpcReplyChannel.js"

export const make: Effect.Effect<RpcShape, never, Rings> = Effect.map(
  Rings,
  (rings) => ({ serve: serve(rings), client: client(rings) })
)

/** Rpc over whichever Rings layer is provided (the region's, or the in-memory fake). */
export const layer: Layer.Layer<Rpc, never, Rings> = Layer.effect(Rpc, make)
