/**
 * The bench's reference systems, one spec each: the one file to start from to add a peer. A
 * spec says how the bench starts the system (server and publishing client), how its e2e
 * consumer process reads it back (`cxlog peer-consume`, PeerConsumerMain.ts), its closed loop
 * for `--type rtt` (Rtt.ts), and how its rows are labelled; the type makes a new peer fill in
 * all of it.
 */
import type { Effect, Scope } from "effect"
import { NATS } from "./NatsCluster.js"
import { natsLoad, natsReader } from "./NatsLoad.js"
import { natsPeer } from "./NatsPeer.js"
import type { PeerClient, PeerReader, PeerStorage, StorageKind } from "./PeerLoad.js"
import type { BenchPeer } from "./PeerNames.js"
import type { PeerFailed, PeerUnavailable } from "./PeerServer.js"
import { redisLoad, redisReader } from "./RedisLoad.js"
import { REDIS, redisPeer } from "./RedisPeer.js"

/** One closed-loop round trip of a peer (`--type rtt`): append a message, wait for its acknowledgement. */
export interface PeerRoundTrip {
  readonly append: (payload: Buffer) => Effect.Effect<void, PeerFailed>
}

/** A reference system, as the bench starts, reads, times and labels it. */
interface PeerSpec {
  readonly load: (storage: StorageKind) => Effect.Effect<PeerClient, PeerUnavailable | PeerFailed, Scope.Scope>
  readonly reader: (address: string, stream: string) => PeerReader
  readonly label: (window: number, storage: PeerStorage) => string
  readonly roundTrip: Effect.Effect<PeerRoundTrip, PeerUnavailable | PeerFailed, Scope.Scope>
  readonly roundTripLabel: (messageBytes: number) => string
}

export const PEER_SPECS = {
  [REDIS]: {
    load: redisLoad,
    reader: (address, stream) => redisReader(Number(address), stream),
    label: (window, storage) => `Redis Streams: pipelined XADD, ≤ ${window} in flight (ioredis), ${storage.detail}`,
    roundTrip: redisPeer,
    roundTripLabel: (messageBytes) => `Redis XADD round trip, ${messageBytes} B (ioredis, no persistence)`
  },
  [NATS]: {
    load: natsLoad,
    reader: natsReader,
    label: (window, storage) => `NATS JetStream: js.publish, ≤ ${window} PubAcks in flight, ${storage.detail}`,
    roundTrip: natsPeer,
    roundTripLabel: (messageBytes) => `NATS JetStream publish → PubAck, ${messageBytes} B (file storage)`
  }
} as const satisfies Record<BenchPeer, PeerSpec>
