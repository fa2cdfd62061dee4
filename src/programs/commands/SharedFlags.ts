/**
 * The flags several `cxlog` commands take, each defined once: the region, a publisher's load
 * (message and batch sizes, window, ACK level, order mode), the credential and TLS files of
 * servers and clients, and the parsers of ages and read positions they share.
 */
import { Either } from "effect"
import { brokerListProblem } from "../../layers/net/BrokerAddress.js"
import { ORDER_MODES, type OrderMode, orderPolicy } from "../../services/log/OrderModes.js"
import { BROKER_SETTINGS, PUBLISHER_SETTINGS } from "../../services/net/NetSettings.js"
import { REGION_SETTINGS } from "../../services/region/RegionSettings.js"
import * as Cli from "../cli/CliKit.js"

export const region = Cli.fromSetting("region", REGION_SETTINGS.settings.name)
export const coherence = Cli.fromSetting("coherence", REGION_SETTINGS.settings.coherence)
export const json = Cli.toggle("json", { description: "print the result as JSON" })
/** The topic a client command works on (one variable, CXLOG_TOPIC, for all of them). */
export const topic = (description: string) =>
  Cli.fromSetting("topic", PUBLISHER_SETTINGS.settings.topic, { description })
export const brokerCount = Cli.integer("broker-count", {
  default: 4,
  min: 1,
  env: "CXLOG_BROKER_COUNT",
  description: "broker processes to start"
})

// ---- a publisher's load ------------------------------------------------------------------------

export const messageBytes = Cli.size("message-bytes", {
  default: "1024",
  env: "CXLOG_MESSAGE_BYTES",
  description: "size of each test message"
})
export const batchBytes = Cli.fromSetting("batch-bytes", PUBLISHER_SETTINGS.settings.batchBytes)
export const maxBatchBytes = Cli.size("max-batch-bytes", {
  default: "1MiB",
  env: "CXLOG_PUBLISHER_MAX_BATCH_BYTES",
  description:
    "a publisher's largest batch, so its largest message (this less 16 bytes, key and headers included); at most the brokers' --max-batch-bytes (CXLOG_MAX_BATCH_BYTES), checked when it connects"
})
export const window = Cli.fromSetting("window", PUBLISHER_SETTINGS.settings.maxInFlightBatches)
/** The publisher's window stays at `--window` instead of adapting under it. */
export const fixedWindow = Cli.fromSetting("fixed-window", PUBLISHER_SETTINGS.settings.fixedWindow)
export const ack = Cli.fromSetting("ack", PUBLISHER_SETTINGS.settings.ackLevel)
/** The order modes as a flag's choices. */
export const orderChoices = ORDER_MODES.map((mode) => `${mode}` as const)
export const order = Cli.choice("order", orderChoices, {
  default: "5",
  env: "CXLOG_ORDER",
  description: `order mode: ${ORDER_MODES.map((mode) => `${mode} ${orderPolicy(mode).promise}`).join(", ")}`
})
/** The mode an `--order` flag names (its choices are the modes). */
export const orderModeOf = (flag: `${OrderMode}`): OrderMode => Number(flag) as OrderMode

// ---- credentials and TLS -----------------------------------------------------------------------

/** A file flag (a PEM, a 0600 secret, …), unset unless given; `shown` is what unset means. */
export const fileFlag = (name: string, env: string, shown: string, description: string) =>
  Cli.optionalText(name, { placeholder: "FILE", shown, env, description })

export const credentials = Cli.fromSetting("credentials", BROKER_SETTINGS.settings.credentials)

/** How a broker lets clients in beside its credential file: TLS, or no authentication (`cxlog serve`'s brokers read the variables). */
export const brokerTransportFlags = {
  insecure: Cli.fromSetting("insecure", BROKER_SETTINGS.settings.insecure),
  tlsCert: Cli.fromSetting("tls-cert", BROKER_SETTINGS.settings.tlsCert),
  tlsKey: Cli.fromSetting("tls-key", BROKER_SETTINGS.settings.tlsKey),
  tlsClientCa: Cli.fromSetting("tls-client-ca", BROKER_SETTINGS.settings.tlsClientCa)
}

/** How a client authenticates and which brokers it trusts; `Users.clientSecurity` reads them. */
export const clientSecurityFlags = {
  secretFile: fileFlag(
    "secret-file",
    "CXLOG_SECRET_FILE",
    "the region's local user's, when readable",
    "authenticate as the user in this 0600 file (NAME:SECRET, from `cxlog user add`)"
  ),
  /** The clients' side of `broker --insecure` (the same variable, so one `CXLOG_INSECURE=true` sets up a whole cluster). */
  insecure: Cli.toggle("insecure", {
    env: "CXLOG_INSECURE",
    description:
      "also take brokers that authenticate nobody (started --insecure): without it, a client holding credentials refuses them"
  }),
  tlsCa: fileFlag(
    "tls-ca",
    "CXLOG_TLS_CA",
    "no TLS",
    "connect with TLS, trusting brokers whose certificate this CA (PEM) signed"
  ),
  tlsClientCert: fileFlag(
    "tls-client-cert",
    "CXLOG_TLS_CLIENT_CERT",
    "none",
    "with --tls-ca: present this client certificate (PEM) to brokers that ask for one"
  ),
  tlsClientKey: fileFlag("tls-client-key", "CXLOG_TLS_CLIENT_KEY", "none", "the key of --tls-client-cert (PEM)")
}

// ---- reading a topic ---------------------------------------------------------------------------

/**
 * The parse of every `--brokers` flag: the list as given, once it is `host:port` addresses (so a
 * command reads it with `parseAddresses`, which then cannot throw); a mistake is a usage mistake
 * naming the flag or its variable, before anything starts.
 */
export const brokerList = (text: string): Either.Either<string, string> => {
  const problem = brokerListProblem(text)
  return problem === undefined ? Either.right(text) : Either.left(problem)
}

/** `--brokers` of a reader (subscribe, mirror, consume): over TCP from these, else the region in place; `description` says how. */
export const readerBrokers = (description: string): Cli.Flag<string | undefined> => ({
  ...Cli.optionalText("brokers", {
    placeholder: "HOST:PORT,…",
    shown: "read the region in place",
    env: "CXLOG_SUBSCRIBE_BROKERS",
    description
  }),
  parse: brokerList
})

/** A read position: the oldest message held, the end, or a message offset. */
export const parseFrom = (t: string): Either.Either<number | "earliest" | "latest", string> =>
  t === "earliest" || t === "latest"
    ? Either.right(t)
    : /^\d+$/.test(t)
    ? Either.right(Number(t))
    : Either.left(`${t} is not a position: use earliest, latest or a message offset (0, 1, …)`)

/**
 * A point in time as `--from-time` takes it: an ISO 8601 time (`2026-11-25T06:00:00Z`) or an age
 * (`90s`, `15m`, `2h`, `1d`, or `15m ago`: that long before now), as ms since the epoch.
 */
export const parseTime = (t: string): Either.Either<number, string> => {
  const ageText = t.trim().replace(/\s*ago$/, "")
  const age = parseAge(ageText)
  if (Either.isRight(age) && !/^\d+$/.test(ageText)) return Either.right(Date.now() - age.right)
  const ms = /^\d{4}-\d{2}-\d{2}/.test(t.trim()) ? Date.parse(t.trim()) : Number.NaN
  return Number.isFinite(ms)
    ? Either.right(ms)
    : Either.left(`${t} is not a time: use an ISO time (2026-11-25T06:00:00Z) or an age (90s, 15m, 2h, 1d ago)`)
}

/**
 * A position as `--to` and `--start` take it: as `--from` does (earliest, latest, an offset), else
 * a time as `--from-time` does.
 */
export const parsePosition = (
  t: string
): Either.Either<"earliest" | "latest" | { readonly offset: number } | { readonly time: number } | undefined, string> =>
  Either.orElse(
    Either.map(parseFrom(t), (from) => (typeof from === "number" ? { offset: from } : from)),
    () =>
      Either.mapBoth(parseTime(t), {
        onLeft: () =>
          `${t} is not a position: use earliest, latest, a message offset, an ISO time or an age (15m, 2h, 1d ago)`,
        onRight: (time) => ({ time })
      })
  )

const AGE_UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** An age as `500ms`, `30s`, `15m`, `12h`, `7d` or a number of milliseconds. */
export const parseAge = (text: string): Either.Either<number, string> => {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim())
  const ms = match === null ? Number.NaN : Math.round(Number(match[1]) * AGE_UNITS[match[2] ?? "ms"]!)
  return ms >= 1 && Number.isSafeInteger(ms)
    ? Either.right(ms)
    : Either.left(`${text} is not an age: use 500ms, 30s, 15m, 12h, 7d or a number of milliseconds`)
}
