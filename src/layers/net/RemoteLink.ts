/**
 * How a service through brokers (Topics: TopicsRemote.ts; ConsumerGroups: groups/ConsumerGroupsRemote.ts)
 * holds its one request link (RequestLink.ts): made at the first call, to the first broker in the
 * order given that takes it, and made again, the same way, by the first call after it broke. One
 * piece, so that every such service finds, authenticates with and gives up on brokers alike.
 */
import { type Duration, Effect, type Scope } from "effect"
import { withMillis } from "../../Durations.js"
import type { NamesOf } from "../../OptionNames.js"
import { type Credentials, withLocalCredentials } from "./Auth.js"
import type { BrokerAddress } from "./BrokerAddress.js"
import type { ClientSecurity, ConnectionClosed } from "./ClientConnection.js"
import { clientTlsProblem } from "./ClientTls.js"
import { fatalWireErrors } from "./Control.js"
import type { RequestLinkSettings } from "./RequestLink.js"

/** The options every service through brokers takes; a service restates one to say what it means there. */
export interface RemoteLinkOptions {
  readonly brokers: ReadonlyArray<BrokerAddress>
  /** How long a broker may take to connect and accept the connection. Default 5 s. */
  readonly connectTimeoutMs?: number
  /** `connectTimeoutMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly connectTimeout?: Duration.DurationInput
  /** How long a call waits for its answer. Default 30 s. */
  readonly requestTimeoutMs?: number
  /** `requestTimeoutMs` as a duration; given both, this one counts. */
  readonly requestTimeout?: Duration.DurationInput
  /**
   * Authenticate as this user. Without it the local user's secret file of `region` is used when
   * the head wrote one on this host; with neither, only a broker without authentication accepts.
   */
  readonly credentials?: Credentials | undefined
  /** Without `credentials`: the region whose local secret file to authenticate with, when there is one. Default `CXLOG_REGION`, else "cxlog". */
  readonly region?: string
  /** Also take a broker that authenticates nobody although this client holds credentials (ClientSecurity `insecure`). */
  readonly insecure?: boolean | undefined
  /** Connect with TLS (the brokers' CA, and a client certificate when they ask for one), as publishers do. */
  readonly tls?: ClientSecurity["tls"]
}

/** The names of `RemoteLinkOptions`, for a facade that refuses options it does not take. */
export const REMOTE_LINK_OPTION_NAMES: NamesOf<RemoteLinkOptions> = {
  brokers: true,
  connectTimeoutMs: true,
  connectTimeout: true,
  requestTimeoutMs: true,
  requestTimeout: true,
  credentials: true,
  region: true,
  insecure: true,
  tls: true
}

/**
 * The link over `given.brokers`, as an effect each call runs first: the open link, or a new one
 * from `open` (its refusals named in `unavailable`'s reason; `connection` names what was refused,
 * "the admin connection"). A refusal every broker would give ends the search, and TLS options
 * no connection can be made with (a key that is not its certificate's) fail every call with
 * `unavailable`, naming them. The link closes with the scope.
 */
export const remoteLink = <L extends { readonly open: () => boolean; readonly close: () => void }, E>(
  given: RemoteLinkOptions,
  open: (address: BrokerAddress, settings: RequestLinkSettings) => Effect.Effect<L, ConnectionClosed>,
  unavailable: (reason: string) => E,
  connection: string
): Effect.Effect<Effect.Effect<L, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const options = withMillis(withLocalCredentials(given), ["connectTimeout", "requestTimeout"])
    const settings: RequestLinkSettings = {
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      credentials: options.credentials,
      insecure: options.insecure === true,
      tls: options.tls
    }
    const unusableTls = clientTlsProblem(options.tls)
    let link: L | undefined
    yield* Effect.addFinalizer(() => Effect.sync(() => link?.close()))
    const opening = yield* Effect.makeSemaphore(1)
    const openAny = Effect.gen(function*() {
      if (unusableTls !== undefined) return yield* Effect.fail(unavailable(unusableTls))
      const refusals: Array<string> = []
      for (const address of options.brokers) {
        const attempt = yield* Effect.either(open(address, settings))
        if (attempt._tag === "Right") return attempt.right
        refusals.push(attempt.left.message)
        if ((fatalWireErrors as ReadonlySet<string>).has(attempt.left.code)) break
      }
      return yield* Effect.fail(unavailable(
        options.brokers.length === 0 ? "no brokers given" : `no broker took ${connection}: ${refusals.join("; ")}`
      ))
    })
    return opening.withPermits(1)(
      Effect.suspend(() =>
        link !== undefined && link.open() ? Effect.succeed(link) : Effect.tap(openAny, (l) => void (link = l))
      )
    )
  })
