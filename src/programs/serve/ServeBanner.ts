/**
 * What `cxlog serve` says once its server is ready: how to connect to it. The brokers'
 * addresses in `--brokers` form, the region, the local user's secret file and the credential
 * file, and one line each to publish and subscribe with the CLI and to open the Promise
 * publisher; for people a block, for programs (`--json`) one `ready` event with the same facts.
 */
import type { TopicSpec } from "../../services/log/Topics.js"

export interface ServeReady {
  readonly region: string
  readonly brokers: ReadonlyArray<{ readonly host: string; readonly port: number }>
  readonly topics: ReadonlyArray<TopicSpec>
  /** The local user's `NAME:SECRET`: clients on this host authenticate with it by themselves. */
  readonly secretFile: string
  /** Users and their rights (`cxlog user add` writes it). */
  readonly credentialFile: string
  readonly dataDir: string | undefined
  readonly pids: {
    readonly head: number
    readonly standby: number | undefined
    readonly brokers: ReadonlyArray<number>
  }
  /** Each role's Prometheus endpoint, by role, when given `--metrics-port`. */
  readonly metrics: ReadonlyArray<{ readonly role: string; readonly url: string }>
}

/** The region clients find their credentials by when told none: theirs unless it is this one. */
const DEFAULT_REGION = "cxlog"

/** An address clients on this host can reach: a broker listening on every interface is reached over loopback. */
const reachable = (host: string) => (host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host)

const addressList = (ready: ServeReady) => ready.brokers.map((b) => `${reachable(b.host)}:${b.port}`).join(",")

const topicLine = (t: TopicSpec) => `${t.name} (order ${t.order}, ack ${t.ackLevel}, rf ${t.replicationFactor})`

/** The CLI and code lines, for the first topic (`events` unless told otherwise). */
const examples = (ready: ServeReady) => {
  const topic = ready.topics[0]?.name ?? "events"
  const region = ready.region === DEFAULT_REGION ? "" : ` --region ${ready.region}`
  const brokers = `--brokers ${addressList(ready)}${region} --topic ${topic}`
  const list = ready.brokers.map((b) => `{ host: ${JSON.stringify(reachable(b.host))}, port: ${b.port} }`).join(", ")
  const codeRegion = ready.region === DEFAULT_REGION ? "" : `, region: ${JSON.stringify(ready.region)}`
  return {
    publish: `echo hello | npx cxlog publish ${brokers}`,
    subscribe: `npx cxlog subscribe ${brokers}`,
    code: `const publisher = await CxlogPublisher.open({ brokers: [${list}], topic: ${
      JSON.stringify(topic)
    }${codeRegion} })`
  }
}

/** What stops a server serve runs in the foreground. */
const CTRL_C = "Ctrl-C stops everything (the brokers, then the head) and removes the region."

/** The block people read; `stopping` says how to stop the server. */
export const readyBanner = (ready: ServeReady, stopping: string = CTRL_C): string => {
  const { publish, subscribe, code } = examples(ready)
  const heads = `head pid ${ready.pids.head}${
    ready.pids.standby === undefined ? "" : `, standby head pid ${ready.pids.standby}`
  }`
  const rows: Array<readonly [string, string]> = [
    ["brokers", `--brokers ${addressList(ready)}`],
    ["region", `${ready.region}  (--region / CXLOG_REGION; /dev/shm/${ready.region.replace(/^\/+/, "")})`],
    ["secret file", `${ready.secretFile}  (the local user's NAME:SECRET: clients on this host use it by themselves)`],
    ["credentials", `${ready.credentialFile}  (users and their rights: cxlog user add)`],
    ["topics", ready.topics.map(topicLine).join(", ") || "none (cxlog create-topic adds them)"],
    ...(ready.dataDir === undefined
      ? []
      : [["data dir", `${ready.dataDir}  (rf 2 topics' copy on disk; left in place on exit)`] as const]),
    ...(ready.metrics.length === 0
      ? []
      : [["metrics", ready.metrics.map((m) => `${m.role} ${m.url}`).join(", ")] as const]),
    ["publish", publish],
    ["subscribe", subscribe],
    ["from code", code]
  ]
  const width = Math.max(...rows.map(([label]) => label.length))
  return [
    "",
    `cxlog serve: ready: ${heads}, ${ready.brokers.length} broker${ready.brokers.length === 1 ? "" : "s"}`,
    ...rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`),
    stopping,
    "",
    ""
  ].join("\n")
}

/** The `ready` event of `--json`: the same facts as fields. */
export const readyEvent = (ready: ServeReady): Record<string, unknown> => {
  const { publish, subscribe, code } = examples(ready)
  return {
    region: ready.region,
    brokers: addressList(ready),
    topics: ready.topics.map((t) => t.name),
    secretFile: ready.secretFile,
    credentialFile: ready.credentialFile,
    ...(ready.dataDir === undefined ? {} : { dataDir: ready.dataDir }),
    pids: ready.pids,
    metrics: ready.metrics,
    examples: { publish, subscribe, code }
  }
}
