/**
 * How a group bench member of each system takes and acks messages (MemberMain.ts runs one per
 * process), every one with `MEMBER_WINDOW` messages in hand at most, each message worked on
 * (`work`) and acked on its own:
 * - cxlog: a member of the consumer group (`ConsumerGroups.join`, maxInFlight `MEMBER_WINDOW`),
 *   taking the deliveries a chunk at a time as the group hands them out (`eachChunk`, as
 *   docs/consumers.md shows), each worked on, then each acked in turn by `ackAll` over the chunk
 *   (one effect, an ack per message); told to hold (the kill bench), it keeps the next chunk unacked;
 * - Redis Streams: `XREADGROUP … COUNT MEMBER_WINDOW` for new entries, then an `XACK` per entry as
 *   each is worked on, sent without waiting for the one before (one connection pipelines them,
 *   as an ioredis client does), the batch's replies awaited before the next read;
 * - NATS JetStream: a durable pull consumer of a work-queue stream, consumed `MEMBER_WINDOW`
 *   messages at a time, `ack()` per message (what a client does; the bench checks the stream
 *   emptied, so every ack took).
 * A member connects (`connect`) before the bench's go, and takes nothing until `run`.
 */
import { jetstream } from "@nats-io/jetstream"
import { connect as natsConnect } from "@nats-io/transport-node"
import { Chunk, Deferred, Effect, Layer, type Scope } from "effect"
import { eachChunk } from "../../../layers/groups/ChunkLoop.js"
import * as ConsumerGroupsRemote from "../../../layers/groups/ConsumerGroupsRemote.js"
import { ackAll } from "../../../layers/groups/GroupDelivery.js"
import { groupMember } from "../../../layers/Roles.js"
import { ConsumerGroups } from "../../../services/groups/ConsumerGroups.js"
import { NATS } from "../peers/NatsCluster.js"
import { natsCall } from "../peers/NatsPeer.js"
import { errorText, PeerFailed } from "../peers/PeerServer.js"
import { connectRedis, REDIS, redisCall } from "../peers/RedisPeer.js"
import { type MemberRecord, work } from "./MemberRecord.js"

/** Messages a member holds at once, in every system: cxlog's default maxInFlight. */
export const MEMBER_WINDOW = 64
/** How long a Redis read waits for entries before it asks again (the member then looks whether it was stopped). */
const READ_BLOCK_MS = 50

export const CXLOG = "cxlog"
export const GROUP_SYSTEMS = [CXLOG, REDIS, NATS] as const
export type GroupSystem = (typeof GROUP_SYSTEMS)[number]

/** Where a member reports what it does beside its record: a message delivered again (its index). */
export interface MemberRun {
  readonly record: MemberRecord
  readonly redelivered: (index: number) => void
  /** Resumes when the bench says stop. */
  readonly stop: Effect.Effect<void>
  /** The bench said hold (cxlog): keep the next messages given unacked, until killed. */
  readonly holding: () => boolean
}

export interface MemberLoop {
  /** Takes, works on and acks messages until stopped. */
  readonly run: (on: MemberRun) => Effect.Effect<void, unknown>
  /** The fold of every message worked on (reported, so the work is done). */
  readonly fold: () => number
}

type Connect = (address: string, group: string) => Effect.Effect<MemberLoop, unknown, Scope.Scope>

/** One message's work and record, before its ack. */
const take = (on: MemberRun, payload: Uint8Array, deliveries: number, folds: { value: number }) => {
  const { fold, index } = work(payload)
  folds.value ^= fold
  on.record.held(index, deliveries)
  if (deliveries > 1) on.redelivered(index)
  return index
}

/** A cxlog member's address: the region's name, and the broker's port when it goes through one. */
export const memberAddress = (region: string, port: number) => `${region}@${port}`

/** The groups of `address`: the region mapped, or through the broker on this host it names (with the region's secret file). */
const groupsAt = (address: string) => {
  const [region, port] = address.split("@") as [string, string | undefined]
  return port === undefined
    ? groupMember({ name: region })
    : ConsumerGroupsRemote.layerRemote({ brokers: [{ host: "127.0.0.1", port: Number(port) }], region })
}

/** cxlog: `address` is the region's name, with the broker's port for members through it (`memberAddress`). */
const cxlogMember: Connect = (address, group) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(groupsAt(address))
    const groups = yield* Effect.provide(ConsumerGroups, context)
    yield* groups.describe(group)
    const folds = { value: 0 }
    return {
      fold: () => folds.value,
      run: (on) =>
        eachChunk(groups.join(group, { maxInFlight: MEMBER_WINDOW }), (deliveries) => {
          // The chunk is in hand (recorded as held) until each ack: the kill bench reads what a member held from its record.
          const indices = Chunk.toReadonlyArray(deliveries).map((d) => take(on, d.value, d.deliveryCount, folds))
          if (on.holding()) return Effect.never
          return Effect.map(
            ackAll(deliveries),
            (acked) => acked.forEach((ok, i) => ok && on.record.acked(indices[i]!))
          )
        }).pipe(
          // The stop interrupts the one fiber running the stream (`Stream.interruptWhen` would
          // race the stop against every pull of the stream: fibers per chunk).
          Effect.raceFirst(on.stop)
        )
    }
  })

/** Redis: `address` is the server's port; `group` names the stream and its group alike. */
const redisMember: Connect = (port, group) =>
  Effect.gen(function*() {
    const client = yield* connectRedis(Number(port))
    const consumer = `member-${process.pid}`
    const folds = { value: 0 }
    return {
      fold: () => folds.value,
      run: (on) =>
        Effect.gen(function*() {
          let stopped = false
          yield* Effect.fork(Effect.map(on.stop, () => (stopped = true)))
          const loop = async () => {
            while (!stopped) {
              // As Buffers: the payloads are bytes, not text.
              const reply = await client.callBuffer("XREADGROUP", [
                "GROUP",
                group,
                consumer,
                "COUNT",
                MEMBER_WINDOW,
                "BLOCK",
                READ_BLOCK_MS,
                "STREAMS",
                group,
                ">"
              ]) as Array<[Buffer, Array<[Buffer, Array<Buffer>]>]> | null
              if (reply === null) continue
              const acks: Array<Promise<unknown>> = []
              for (const [, entries] of reply) {
                for (const [id, fields] of entries) {
                  const index = take(on, fields[1]!, 1, folds)
                  acks.push(client.xack(group, group, id).then((n) => n === 1 && on.record.acked(index)))
                }
              }
              await Promise.all(acks)
            }
          }
          yield* redisCall("XREADGROUP and XACK", loop)
        }).pipe(Effect.scoped)
    }
  })

/** NATS: `address` is the server's URL; `group` names the stream and its durable consumer alike. */
const natsMember: Connect = (url, group) =>
  Effect.gen(function*() {
    const nc = yield* Effect.acquireRelease(
      natsCall("connecting", () => natsConnect({ servers: [url], noAsyncTraces: true })),
      (c) => Effect.promise(() => c.close().catch(() => undefined))
    )
    const consumer = yield* natsCall("opening the pull consumer", () => jetstream(nc).consumers.get(group, group))
    const folds = { value: 0 }
    return {
      fold: () => folds.value,
      run: (on) =>
        Effect.gen(function*() {
          const messages = yield* Effect.acquireRelease(
            natsCall("consuming", () => consumer.consume({ max_messages: MEMBER_WINDOW })),
            (m) => Effect.promise(() => m.close().catch(() => undefined))
          )
          const ended = yield* Deferred.make<void, PeerFailed>()
          yield* Effect.fork(Effect.zipRight(on.stop, Effect.sync(() => messages.stop())))
          const loop = async () => {
            for await (const m of messages) {
              const index = take(on, m.data, m.info.deliveryCount, folds)
              m.ack()
              on.record.acked(index)
            }
          }
          loop().then(
            () => Deferred.unsafeDone(ended, Effect.void),
            (error: unknown) =>
              Deferred.unsafeDone(
                ended,
                Effect.fail(new PeerFailed({ peer: NATS, detail: `consuming: ${errorText(error)}` }))
              )
          )
          yield* Deferred.await(ended)
        }).pipe(Effect.scoped)
    }
  })

export const MEMBER_SYSTEMS: Record<GroupSystem, Connect> = {
  [CXLOG]: cxlogMember,
  [REDIS]: redisMember,
  [NATS]: natsMember
}
