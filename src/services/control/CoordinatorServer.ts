/**
 * CoordinatorServer: the coordinator itself, run in the head (the layer serves every process
 * slot's request ring over RPC); what the head reads of it.
 */
import { Context } from "effect"
import type { Member } from "./Coordinator.js"

export interface CoordinatorServerShape {
  /** The members now. */
  readonly members: () => ReadonlyArray<Member>
  /** Barrier rounds open now (arrivals awaited or drains running). */
  readonly openBarriers: () => number
}

export class CoordinatorServer
  extends Context.Tag("cxlog/CoordinatorServer")<CoordinatorServer, CoordinatorServerShape>()
{}
