/**
 * `cxlog mirror`: a role that carries a topic's total order into a NATS JetStream stream,
 * exactly once (docs/mirror.md). It reads the region in place (on its host), or over TCP from
 * brokers with `--brokers` (then `--region-id` names the region, as `cxlog regions` shows it).
 */
import { Effect, Layer } from "effect"
import { createHash } from "node:crypto"
import { CONSUMER_NAME_BYTES } from "../../layers/log/Records.js"
import * as MirrorLayers from "../../layers/mirror/Mirror.js"
import * as SubscriberLayers from "../../layers/net/Subscriber.js"
import { layerRemote, type RemoteSubscriberOptions } from "../../layers/net/SubscriberRemote.js"
import * as TopicsRemoteLayers from "../../layers/net/TopicsRemote.js"
import { regionId } from "../../layers/region/Superblock.js"
import { attachRegion, processSlot, reader, type RegionAccess } from "../../layers/Roles.js"
import { Mirror, type MirrorOptions, type MirrorState } from "../../services/mirror/Mirror.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { report, reportFailure } from "./Report.js"

export type MirrorRunOptions = Omit<MirrorOptions, "regionId"> & {
  readonly region: RegionAccess
  /** Read over TCP from brokers; the region's id must then be given. */
  readonly remote?: { readonly subscriber: RemoteSubscriberOptions; readonly regionId: string }
}

/** A stream name JetStream takes (no `.`, `*`, `>` or spaces), from the topic's name. */
export const defaultStreamName = (topic: string): string => `cxlog-${topic.replace(/[.*> ]/g, "_")}`

/**
 * The named consumer a mirror into `stream` reads as: `mirror-STREAM`, or, when that is longer than
 * a consumer name may be, the stream's first 8 characters and a hash of its whole name.
 */
export const defaultConsumerName = (stream: string): string => {
  const name = `mirror-${stream}`
  if (Buffer.byteLength(name) <= CONSUMER_NAME_BYTES) return name
  return `mirror-${stream.slice(0, 8)}-${createHash("sha256").update(stream).digest("hex").slice(0, 8)}`
}

/** Logs each change of state, with what the mirror says about it. */
const stateLogger = () => {
  let last: MirrorState | undefined
  return (status: Parameters<NonNullable<MirrorOptions["onStatus"]>>[0]) => {
    if (status.state === last) return
    last = status.state
    const where = `mirror ${status.topic} → ${status.stream} (${status.servers.join(",")})`
    // Starting, it has not read yet where the stream ends: no offset to name.
    const line = status.state === "mirroring"
      ? `${where}: mirroring from offset ${status.mirrored} (stream sequence ${status.streamSequence})`
      : status.state === "starting"
      ? `${where}: starting`
      : `${where}: ${status.state} at offset ${status.mirrored}${
        status.detail === undefined ? "" : `: ${status.detail}`
      }`
    process.stderr.write(`${line}\n`)
    // An orchestrator (the bench) starts its measured load once the mirror runs, not while it boots.
    if (status.state === "mirroring") report({ event: "mirroring", offset: status.mirrored })
  }
}

/** The topics' descriptions through the brokers a remote mirror reads from, as the same user. */
const topicsThrough = (o: RemoteSubscriberOptions) =>
  TopicsRemoteLayers.layerRemote({
    brokers: o.brokers,
    ...(o.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: o.connectTimeoutMs }),
    ...(o.credentials === undefined ? {} : { credentials: o.credentials }),
    ...(o.region === undefined ? {} : { region: o.region }),
    ...(o.insecure === undefined ? {} : { insecure: o.insecure }),
    ...(o.tls === undefined ? {} : { tls: o.tls })
  })

/** Runs the mirror over the region (its id from the superblock) or over brokers. */
export const mirror = (options: MirrorRunOptions) => {
  const log = stateLogger()
  const runWith = (id: string) =>
    Effect.flatMap(Mirror, (service) =>
      service.run({
        ...options,
        regionId: id,
        onStatus: (status) => {
          log(status)
          options.onStatus?.(status)
        }
      }))
  const running = options.remote === undefined
    ? Effect.flatMap(CxlMemory, (memory) => runWith(regionId(memory))).pipe(
      Effect.provide(
        MirrorLayers.layer.pipe(
          Layer.provideMerge(SubscriberLayers.layer),
          Layer.provideMerge(
            reader.pipe(Layer.provideMerge(processSlot("client")), Layer.provideMerge(attachRegion(options.region)))
          )
        )
      )
    )
    : runWith(options.remote.regionId).pipe(
      Effect.provide(
        MirrorLayers.layer.pipe(
          Layer.provide(Layer.merge(layerRemote(options.remote.subscriber), topicsThrough(options.remote.subscriber)))
        )
      )
    )
  return running.pipe(Effect.tapError((error) => Effect.sync(() => reportFailure(error))))
}
