/**
 * How a service through brokers (Topics: TopicsRemote.ts; ConsumerGroups: groups/ConsumerGroupsRemote.ts)
 * holds its one request link (RequestLink.ts): made at the first call, to the first broker in the
 * order given that takes it, and made again, the same way, by the first call after it broke. One
 * piece, so that every such service finds, authenticates with and gives up on brokers alike.
 */
import { type Duration, Effect, type Scope } from "effect"
import { durationsProblem, withMillis } from "../../Durations.js"
import type { NamesOf } from "../../OptionNames.js"
import { MAX_TIMER_MS } from "../../SettingText.js"
import { type Credentials, withLocalCredentials } from "./Auth.js"
import { type BrokerAddress, brokersProblem } from "./BrokerAddress.js"
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

const shown = (value: unknown): string => (typeof value === "string" ? JSON.stringify(value) : String(value))

/** Why `given` cannot open a link to brokers (a subscriber's, an admin client's, a remote member's), or undefined. */
export const remoteLinkProblem = (given: RemoteLinkOptions): string | undefined => {
  const unusable = brokersProblem(given.brokers) ?? durationsProblem(given, ["connectTimeout", "requestTimeout"])
  if (unusable !== undefined) return unusable
  const options = withMillis(given, ["connectTimeout", "requestTimeout"])
  const { connectTimeoutMs, credentials, insecure, region, requestTimeoutMs, tls } = options
  for (const [name, ms] of [["connectTimeoutMs", connectTimeoutMs], ["requestTimeoutMs", requestTimeoutMs]] as const) {
    if (ms !== undefined && !(typeof ms === "number" && ms > 0 && ms <= MAX_TIMER_MS)) {
      return `${name} must be a number of milliseconds from 1 to ${MAX_TIMER_MS}, not ${shown(ms)}`
    }
  }
  if (region !== undefined && typeof region !== "string") return `region must be a region's name, not ${shown(region)}`
  if (insecure !== undefined && typeof insecure !== "boolean") {
    return `insecure must be true or false, not ${shown(insecure)}`
  }
  if (
    credentials !== undefined &&
    (typeof credentials !== "object" || credentials === null || typeof credentials.user !== "string" ||
      typeof credentials.secret !== "string")
  ) {
    return `credentials must be { user, secret } (from cxlog user add), not ${shown(credentials)}`
  }
  return clientTlsProblem(tls)
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
    // The Promise clients check these before they get here; the Effect layers (TopicsRemoteLayers,
    // ConsumerGroupsRemoteLayers) do not: one that is no duration would throw from withMillis, and
    // a NaN or Infinity timeout arm a timer that fires after 1 ms.
    const unusable = remoteLinkProblem(given)
    if (unusable !== undefined) return Effect.fail(unavailable(`invalid options: ${unusable}`))
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
