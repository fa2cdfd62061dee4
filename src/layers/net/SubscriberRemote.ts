/**
 * The remote Subscriber: reads a topic over TCP from any broker (docs/protocol.md,
 * "Subscribing"). It tries the brokers in the order given until one answers SUBSCRIBED; each
 * pull then takes the next DATA frame from the socket's input (a view of the received bytes,
 * valid until the next pull), checks its crc32c and framing, and hands it out. It grants
 * credit as it consumes — half its window at a time — so the broker sends only as fast as this
 * subscriber reads, and input it has not pulled stays in the kernel (reading pauses past
 * `bufferBytes`).
 *
 * A DATA frame whose crc32c does not match is a batch the broker's retention reclaimed while
 * sending it: the broker's `out-of-range` ERROR follows, and the pull fails with
 * `LogOutOfRange`; the torn batch is never delivered.
 *
 * Its rooms: SubscriberConnection (a connection, its handshake, `subscribeAny`),
 * RemoteSubscription (a subscription's state: pulls, commits, failover) and RemoteTopics (a
 * subscription to several topics and patterns over one connection, a stream per topic).
 */
import { type Duration, Layer } from "effect"
import { withMillis } from "../../Durations.js"
import { Subscriber, type SubscriberShape } from "../../services/net/Subscriber.js"
import { type Credentials, withLocalCredentials } from "./Auth.js"
import type { BrokerAddress } from "./BrokerAddress.js"
import type { ClientSecurity } from "./ClientConnection.js"
import { refusingSubscriber, remoteSubscriberProblem } from "./RemoteOptionsCheck.js"
import { bounds, subscribeRemote } from "./RemoteSubscription.js"
import { subscribeTopicsRemote } from "./RemoteTopics.js"
import { checkingOptions } from "./SubscribeOptionsCheck.js"
import type { Settings } from "./SubscriberConnection.js"

export interface RemoteSubscriberOptions {
  readonly brokers: ReadonlyArray<BrokerAddress>
  /** DATA frames the broker may send ahead of what this subscriber has pulled (1 to 4096). Default 256. */
  readonly credit?: number
  /** How long a broker may take to connect and answer SUBSCRIBE. Default 5 s. */
  readonly connectTimeoutMs?: number
  /** `connectTimeoutMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly connectTimeout?: Duration.DurationInput
  /** Received bytes held before reading pauses (the rest waits in the kernel), and the size of each of the two receive buffers. Default 2 MiB (a region's largest batch by default, 1 MiB, fits with its header). */
  readonly bufferBytes?: number
  /** Upper bound of one DATA payload (the brokers' `maxBatchBytes`). Default 64 MiB. */
  readonly maxBatchBytes?: number
  /**
   * Answer a broker's CHALLENGE as this user (it needs the right to read the topic). Without it
   * the subscriber uses the local user's secret file of `region` when the head wrote one on this
   * host; with neither, only a broker without authentication accepts.
   */
  readonly credentials?: Credentials | undefined
  /** Without `credentials`: the region whose local secret file to authenticate with, when there is one. Default `CXLOG_REGION`, else "cxlog". */
  readonly region?: string
  /** Also take a broker that authenticates nobody although this subscriber holds credentials (ClientSecurity `insecure`). */
  readonly insecure?: boolean | undefined
  /** Connect with TLS (the brokers' CA, and a client certificate when they ask for one), as publishers do. */
  readonly tls?: ClientSecurity["tls"]
}

export const makeRemote = (given: RemoteSubscriberOptions): SubscriberShape => {
  // Checked before its durations are read: one that is no duration is refused, naming it.
  const problem = remoteSubscriberProblem(given)
  if (problem !== undefined) return refusingSubscriber(problem)
  const options = withMillis(withLocalCredentials(given), ["connectTimeout"])
  const settings: Settings = {
    brokers: options.brokers,
    credit: options.credit ?? 256,
    connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
    bufferBytes: options.bufferBytes ?? 2 << 20,
    maxBatchBytes: options.maxBatchBytes ?? 64 << 20,
    credentials: options.credentials,
    insecure: options.insecure === true,
    tls: options.tls
  }
  return checkingOptions({
    subscribe: subscribeRemote(settings),
    subscribeTopics: subscribeTopicsRemote(settings),
    bounds: (topic) => bounds(settings, topic)
  })
}

/** The remote Subscriber over `options.brokers` (a local secret file that is there but unusable is a defect naming it). */
export const layerRemote = (options: RemoteSubscriberOptions): Layer.Layer<Subscriber> =>
  Layer.sync(Subscriber, () => makeRemote(options))
