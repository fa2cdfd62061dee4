/**
 * What `cxlog serve` checks before it starts a process: that its region is not there already
 * (served by a live head, left behind by one that is gone, or a file of its name that is no
 * region), that every broker's port is free, and that its brokers can listen on `--host`. Each
 * refusal is a typed error saying which it is and the ways on, where the head or a broker would
 * fail only after the others had started.
 */
import { Data, Effect } from "effect"
import { existsSync } from "node:fs"
import { createServer } from "node:net"
import { isLoopbackHost } from "../../layers/net/ListenHost.js"
import { LAYOUT_VERSION } from "../../layers/region/Superblock.js"
import { RegionLayoutMismatch } from "../../services/region/CxlMemory.js"
import { processEnvironment } from "../../Settings.js"
import { inspectRegion, SHM_DIR } from "../admin/Regions.js"
import { resolveFlag } from "../cli/CliKit.js"
import { brokerTransportFlags } from "../commands/SharedFlags.js"

/**
 * The region `cxlog serve` would create exists: in use by a live head, left by one that is gone,
 * or a file of its name in /dev/shm that is no cxlog region (the head could not create it either).
 */
export class ServeRegionTaken extends Data.TaggedError("ServeRegionTaken")<{
  readonly region: string
  /** What is there: a region a process still uses (its head, or one in its process table), one left behind, or a file that is no region. */
  readonly found: "in-use" | "left-behind" | "not-a-region"
  /** Its head's pid (0 if none is known). */
  readonly headPid: number
  readonly orderedMessages: number
  /** Serve's `--data-dir`: carrying on needs it, and the region's topics with a copy there come back from it. */
  readonly dataDir?: string | undefined
}> {
  override get message() {
    if (this.found === "not-a-region") {
      return `${SHM_DIR}/${this.region} exists and is not a cxlog region (another program's shared memory, or a file put there): ` +
        `give this serve another --region (CXLOG_REGION), or remove that file if nothing uses it (rm ${SHM_DIR}/${this.region})`
    }
    if (this.found === "in-use") {
      return `region ${this.region} is in use: ${
        this.headPid > 0 ? `its head (pid ${this.headPid})` : "a process in it"
      } still runs ` +
        `(another cxlog serve, or a cxlog head). Connect to that one, stop it, or give this serve another --region (CXLOG_REGION)`
    }
    const held = this.orderedMessages > 0 ? ` and holds ${this.orderedMessages} ordered messages` : ""
    return `region ${this.region} already exists in ${SHM_DIR}${held}; the head that made it${
      this.headPid > 0 ? ` (pid ${this.headPid})` : ""
    } is gone. ` +
      `Remove it with \`cxlog regions --remove ${this.region}\`${
        this.orderedMessages === 0
          ? ""
          : this.dataDir === undefined
          ? " (that destroys those messages)"
          : ` (that destroys those messages, but for what its replication factor 2 topics hold in ${this.dataDir}: serve started again on it makes them again from there)`
      }, ` +
      `give this serve another --region, or carry on with its data by hand: \`cxlog head --attach --region ${this.region}${
        this.dataDir === undefined ? "" : ` --data-dir ${this.dataDir}`
      }\``
  }
}

/** A port a broker of `cxlog serve` would listen on is taken by another process. */
export class ServePortTaken extends Data.TaggedError("ServePortTaken")<{
  readonly host: string
  readonly port: number
  /** The broker that would listen there (broker i listens on --port + i). */
  readonly brokerId: number
  /** The first broker's port (`--port`). */
  readonly firstPort: number
}> {
  override get message() {
    const whose = this.brokerId === 0
      ? "broker 0's (--port)"
      : `broker ${this.brokerId}'s (--port ${this.firstPort} + ${this.brokerId})`
    return `port ${this.port} on ${this.host}, ${whose}, is taken by another process (EADDRINUSE). Give serve another --port ` +
      `(CXLOG_BROKER_PORT; broker i listens on --port + i), or stop what listens there (\`ss -ltnp 'sport = :${this.port}'\` names it)`
  }
}

/** `--metrics-port` and `--port` give serve's roles some of the same ports. */
export class ServePortsOverlap extends Data.TaggedError("ServePortsOverlap")<{
  readonly port: number
  readonly brokers: number
  readonly metricsPort: number
  /** The first port both ranges hold. */
  readonly shared: number
}> {
  override get message() {
    return `--metrics-port ${this.metricsPort} (the head's, then broker i's at + 1 + i: up to ${
      this.metricsPort + this.brokers
    }) and --port ${this.port} (broker i's at + i: up to ${this.port + this.brokers - 1}) share port ${this.shared}: ` +
      `give one of them ports apart from the other's`
  }
}

/**
 * `--host` is beyond loopback and serve's environment gives its brokers neither TLS nor
 * CXLOG_INSECURE: they would refuse to listen (docs/security.md, "Beyond loopback").
 */
export class ServeHostUnsecured extends Data.TaggedError("ServeHostUnsecured")<{ readonly host: string }> {
  override get message() {
    return `--host ${this.host} is beyond loopback, where serve's brokers listen only with TLS and authentication, or with ` +
      `neither: set CXLOG_TLS_CERT and CXLOG_TLS_KEY (the brokers' certificate and key, PEM files), or CXLOG_INSECURE=true, ` +
      `in serve's environment, which its brokers read them from (serve takes no flag for them; docs/security.md)`
  }
}

/** Fails with ServePortsOverlap when the brokers' ports and the roles' metrics ports (both given) meet. */
export const requirePortsApart = (port: number, brokers: number, metricsPort: number) => {
  if (port <= 0 || metricsPort <= 0) return Effect.void
  // The head's metrics port, then one per broker; the brokers' own ports.
  const first = Math.max(port, metricsPort)
  const last = Math.min(port + brokers - 1, metricsPort + brokers)
  return first <= last ? Effect.fail(new ServePortsOverlap({ port, brokers, metricsPort, shared: first })) : Effect.void
}

/** Fails with ServeRegionTaken when /dev/shm holds a file of the region's name: a cxlog region, or not one (RegionLayoutMismatch: another build's, left behind). */
export const requireRegionFree = (region: string, dataDir?: string) =>
  Effect.flatMap(inspectRegion(region), (info): Effect.Effect<void, ServeRegionTaken | RegionLayoutMismatch> => {
    if (info === undefined) {
      return existsSync(`${SHM_DIR}/${region}`)
        ? Effect.fail(new ServeRegionTaken({ region, found: "not-a-region", headPid: 0, orderedMessages: 0 }))
        : Effect.void
    }
    // One a head was killed while making holds nothing: the head makes it anew.
    if (info.unfinished === true && !info.inUse) return Effect.void
    // Another build's region left behind: `cxlog head --attach` could not carry on with it, only its removal helps.
    if (!info.inUse && info.unfinished !== true && info.layoutVersion !== LAYOUT_VERSION) {
      return Effect.fail(
        new RegionLayoutMismatch({ name: info.name, expected: LAYOUT_VERSION, found: info.layoutVersion })
      )
    }
    return Effect.fail(
      new ServeRegionTaken({
        region: info.name,
        found: info.inUse ? "in-use" : "left-behind",
        headPid: info.owner.pid,
        orderedMessages: info.orderedMessages,
        dataDir
      })
    )
  })

/**
 * Whether something already listens on `host:port`: a listen there fails with EADDRINUSE. Any
 * other refusal (no such address here, a port that needs privileges) is the broker's to report,
 * with its own words, when it tries.
 */
const portTaken = (host: string, port: number) =>
  Effect.async<boolean>((resume) => {
    const probe = createServer()
    probe.once("error", (error: NodeJS.ErrnoException) => resume(Effect.succeed(error.code === "EADDRINUSE")))
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resume(Effect.succeed(false))))
    return Effect.sync(() => probe.close())
  })

/** Fails with ServePortTaken naming the first of `host:firstPort …` (one port per broker) that is taken. */
export const requirePortsFree = (host: string, firstPort: number, brokers: number) =>
  Effect.forEach(
    Array.from({ length: brokers }, (_, i) => i),
    (brokerId) =>
      Effect.flatMap(portTaken(host, firstPort + brokerId), (taken) =>
        taken
          ? Effect.fail(new ServePortTaken({ host, port: firstPort + brokerId, brokerId, firstPort }))
          : Effect.void),
    { discard: true }
  )

/**
 * Fails when serve's brokers would refuse to listen on `host`: a name that resolves to nothing
 * (ListenHostUnknown), or an address beyond loopback with neither TLS (CXLOG_TLS_CERT and
 * CXLOG_TLS_KEY) nor CXLOG_INSECURE in serve's environment, which its brokers inherit.
 */
export const requireServableHost = (host: string) =>
  Effect.gen(function*() {
    if (yield* isLoopbackHost(host)) return
    const env = processEnvironment()
    const value = (flag: typeof brokerTransportFlags[keyof typeof brokerTransportFlags]) =>
      Effect.map(resolveFlag("cxlog serve", flag, env), (resolved) => resolved.value)
    const insecure = (yield* value(brokerTransportFlags.insecure)) === true
    const tls = (yield* value(brokerTransportFlags.tlsCert)) !== undefined &&
      (yield* value(brokerTransportFlags.tlsKey)) !== undefined
    if (!insecure && !tls) return yield* new ServeHostUnsecured({ host })
  })
