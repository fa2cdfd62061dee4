/**
 * `--brokers` of the administering commands (`topics`, `create-topic`, `groups`): through these
 * brokers over TCP, as the user of the client flags (--secret-file, --tls-ca, …), else the region
 * on this host. One flag and one reading of it, so that each command finds its brokers alike.
 */
import { Effect } from "effect"
import { parseAddresses } from "../../layers/net/BrokerAddress.js"
import type { RemoteLinkOptions } from "../../layers/net/RemoteLink.js"
import * as Cli from "../cli/CliKit.js"
import { brokerList } from "./SharedFlags.js"

/** The flag; `rights` says what the user of --secret-file needs there. */
export const adminBrokers = (rights: string): Cli.Flag<string | undefined> => ({
  ...Cli.optionalText("brokers", {
    placeholder: "HOST:PORT,…",
    shown: "the region on this host",
    env: "CXLOG_ADMIN_BROKERS",
    description:
      `work through the first of these brokers that takes the connection (over TCP, as the user of --secret-file: ${rights})`
  }),
  parse: brokerList
})

/** What the flags of an administering command hold of where it works. */
export interface AdminBrokersFlags {
  readonly region: string
  readonly brokers: string | undefined
  readonly secretFile: string | undefined
  readonly insecure: boolean
  readonly tlsCa: string | undefined
  readonly tlsClientCert: string | undefined
  readonly tlsClientKey: string | undefined
}

/**
 * The link to `--brokers` (addresses, as the flag's parse took them) with the client flags' user
 * and TLS (the region's local user by default), or undefined without `--brokers`.
 */
export const adminRemote = (o: AdminBrokersFlags) =>
  Effect.gen(function*() {
    if (o.brokers === undefined) return undefined
    const { clientSecurity } = yield* Cli.load(() => import("../admin/Users.js"))
    return {
      brokers: parseAddresses(o.brokers),
      region: o.region,
      ...(yield* clientSecurity(o))
    } satisfies RemoteLinkOptions
  })
