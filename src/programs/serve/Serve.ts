/**
 * `cxlog serve`: a whole local server in one command, as `redis-server` or `nats-server -js`.
 * A head (coordinator + sequencer), optionally a standby head, and N brokers, each its own
 * `cxlog` process forked as `cxlog run` forks its roles (Cluster.ts `spawnRole`), started in
 * that order, each once the one before it said it is ready. Then it prints how to connect
 * (ServeBanner.ts) and runs until stopped, every role's output in its one stream (ServeLog.ts).
 *
 * Stopping: SIGINT (Ctrl-C) or SIGTERM stops the brokers, then the standby, then the head,
 * which removes the region (its data directory stays), and serve exits 0. The roles run in a
 * process group of their own, so a terminal's Ctrl-C reaches serve alone and that order holds.
 * A role that dies on its own is reported and the rest are stopped the same way; serve then
 * fails with ServeRoleFailed (exit 1): a server with a broker missing is not the server it
 * announced, and a supervisor (systemd, a container) restarts the whole of it. With a standby,
 * the head's death is survived: the standby takes over, and serve fails only once no head is
 * left. Serve SIGKILLed: each role's IPC channel closes and it stops itself (exitWithParent).
 */
import { Data, Effect, Fiber } from "effect"
import { requireDataDir } from "../../layers/log/durable/DurableTier.js"
import { MAX_WRITER_SLOTS } from "../../layers/log/Layout.js"
import { defaultCredentialPath, defaultSecretPath } from "../../layers/net/Auth.js"
import { regionConfig, validate as validateRegionConfig } from "../../layers/RegionLayout.js"
import { LOG_LAYOUT_SETTINGS } from "../../services/log/LogSettings.js"
import type { TopicSpec } from "../../services/log/Topics.js"
import { processEnvironment } from "../../Settings.js"
import { failUsage } from "../cli/CliFailure.js"
import { announceTargets } from "../report/Dashboard.js"
import { report } from "../roles/Report.js"
import { BrokerEvents, HeadEvents, type ReportedError } from "../roles/RoleEvents.js"
import { regionGuard, type RoleFailed, type RoleOf, spawnRole, type Vocabulary, whileAlive } from "../run/Cluster.js"
import { readyBanner, readyEvent, type ServeReady } from "./ServeBanner.js"
import { requirePortsApart, requirePortsFree, requireRegionFree, requireServableHost } from "./ServeChecks.js"
import { makeServeLog, type ServeLog } from "./ServeLog.js"

export interface ServeOptions {
  readonly region: string
  /** The address the brokers listen on. */
  readonly host: string
  /** Broker i listens on `port + i`; 0: each on any free port. */
  readonly port: number
  readonly brokers: number
  /** Created by the head at start. */
  readonly topics: ReadonlyArray<TopicSpec>
  /** Also run a standby head that takes over when the head dies. */
  readonly standby: boolean
  /** The durable tier (rf 2 topics, ACK 2 on disk), given to the heads and the brokers. */
  readonly dataDir: string | undefined
  /** The head's Prometheus endpoint on this port, broker i's on port + 1 + i (0: none). */
  readonly metricsPort: number
  readonly json: boolean
}

/** Broker slots kept free beside the brokers' for local publishers (`cxlog publish --local` takes one each). */
const LOCAL_PUBLISHER_SLOTS = 2

/** How long serve waits for each role to say it is ready (a loaded machine starts a process in seconds). */
const READY_MS = 60_000

/** A role of the server died on its own (or never got ready); the others are stopped. */
export class ServeRoleFailed extends Data.TaggedError("ServeRoleFailed")<{
  readonly role: string
  readonly pid: number
  /** How it ended: `exited with code 1`, `exited with SIGKILL`, `no "ready" within 60000 ms`. */
  readonly reason: string
  /** What serve was waiting for when it did, if it was starting. */
  readonly waitingFor?: string
  /** The typed error the role reported, if it did. */
  readonly error?: ReportedError
}> {
  override get message() {
    const during = this.waitingFor === undefined ? "" : ` while serve waited for ${this.waitingFor}`
    const typed = this.error === undefined ? "" : `: ${this.error._tag}: ${this.error.message}`
    return `${this.role} (pid ${this.pid}) ${this.reason}${during}${typed}; serve stopped the rest (its own output, above, may say more)`
  }
  static of(failed: RoleFailed): ServeRoleFailed {
    const { role, pid, reason, error, waitingFor } = failed
    return new ServeRoleFailed({
      role,
      pid: pid ?? 0,
      reason,
      ...(waitingFor === undefined || waitingFor === "it to finish" ? {} : { waitingFor }),
      ...(error === undefined ? {} : { error })
    })
  }
}

/**
 * The roles' environment: the region's name and the heads' part. The region's sizes are the
 * `CXLOG_*` variables in serve's environment, which its roles inherit; its writer slots
 * (CXLOG_LOG_MAX_BROKERS, 64 unless set) must hold the brokers and LOCAL_PUBLISHER_SLOTS, and
 * whatever else the head would refuse of them is refused here, before anything starts (exit 2).
 */
const rolesEnv = (options: ServeOptions) =>
  Effect.gen(function*() {
    const variable = LOG_LAYOUT_SETTINGS.settings.maxBrokers.env
    const config = yield* regionConfig
    const needed = options.brokers + LOCAL_PUBLISHER_SLOTS
    if (config.log.maxBrokers < needed) {
      const given = processEnvironment()[variable] !== undefined
      return yield* failUsage(
        `cxlog serve: --broker-count ${options.brokers} needs ${needed} writer slots in the region (one per broker, and ${LOCAL_PUBLISHER_SLOTS} for local publishers: cxlog publish --local), and ${
          given ? `${variable}=${config.log.maxBrokers}` : `${variable}'s default`
        } gives it ${config.log.maxBrokers}: ${
          needed <= MAX_WRITER_SLOTS
            ? `raise it to ${needed}, or start fewer brokers`
            : `a region has at most ${MAX_WRITER_SLOTS}: start at most ${
              MAX_WRITER_SLOTS - LOCAL_PUBLISHER_SLOTS
            } brokers`
        }`
      )
    }
    yield* validateRegionConfig(config)
    const lastPort = options.port + options.brokers - 1
    if (options.port > 0 && lastPort > 65535) {
      return yield* failUsage(
        `cxlog serve: ${options.brokers} brokers from --port ${options.port} would need ports up to ${lastPort}: give a lower --port or fewer brokers`
      )
    }
    return {
      CXLOG_REGION: options.region,
      // The head serve starts creates the region, whatever this shell says a head does.
      CXLOG_STANDBY: "false",
      CXLOG_ATTACH: "false"
    }
  })

/**
 * What serve refuses as mistakes in its flags or environment (exit 2), before anything starts:
 * `serve` checks them first, and `--detach` before it starts serve in the background. The
 * roles' environment.
 */
export const requireServeConfig = (options: ServeOptions) =>
  Effect.gen(function*() {
    const env = yield* rolesEnv(options)
    yield* requireDataDir(options.topics, options.dataDir)
    yield* requirePortsApart(options.port, options.brokers, options.metricsPort)
    yield* requireServableHost(options.host)
    return env
  })

/** A role's metrics port: the head's `--metrics-port`, broker i's the next + i; none without it. */
const metricsPortOf = (options: ServeOptions, index: number) => ({
  CXLOG_METRICS_PORT: options.metricsPort > 0 ? `${options.metricsPort + index}` : "0"
})

/** `name:order:ack:rf[:disk-bytes:disk-age]`, as `--topic` takes it. */
export const topicArg = (t: TopicSpec) => {
  const base = `${t.name}:${t.order}:${t.ackLevel}:${t.replicationFactor}`
  const retention = t.diskRetention
  return retention === undefined ? base : `${base}:${retention.maxBytes ?? ""}:${retention.maxAgeMs ?? ""}`
}

const dataDirArgs = (options: ServeOptions) => (options.dataDir === undefined ? [] : ["--data-dir", options.dataDir])

/** Every role forked by serve: in a process group of its own, its output in serve's stream. */
const startRole = <V extends Vocabulary>(
  log: ServeLog,
  role: string,
  args: ReadonlyArray<string>,
  env: Record<string, string>,
  vocabulary: V
) =>
  Effect.tap(
    spawnRole(role, args, env, vocabulary, { ownProcessGroup: true }),
    (started) => Effect.sync(() => log.follow(started))
  )

/**
 * Fails with the first role to die: a broker, or the last head (with a standby the head's death
 * is survived: the standby takes over).
 */
const watchRoles = (
  head: RoleOf<typeof HeadEvents>,
  standby: RoleOf<typeof HeadEvents> | undefined,
  brokers: ReadonlyArray<RoleOf<typeof BrokerEvents>>
) => {
  // With a standby, the head that died last ended the server: whichever of the two that is.
  const headsGone = standby === undefined
    ? Effect.flip(head.exited)
    : Effect.raceWith(Effect.flip(head.exited), Effect.flip(standby.exited), {
      onSelfDone: (_, standbyFiber) => Fiber.join(standbyFiber),
      onOtherDone: (_, headFiber) => Fiber.join(headFiber)
    })
  const brokerGone = Effect.raceAll(brokers.map((b) => Effect.flip(b.exited)))
  return Effect.flatMap(Effect.race(headsGone, brokerGone), (failed) => Effect.fail(failed))
}

/** Starts the server, says how to connect, and serves until stopped (interrupted) or a role dies (ServeRoleFailed). */
export const serve = (options: ServeOptions) =>
  Effect.gen(function*() {
    const env = yield* requireServeConfig(options)
    yield* requireRegionFree(options.region, options.dataDir)
    if (options.port > 0) yield* requirePortsFree(options.host, options.port, options.brokers)
    const names = ["serve", "head", ...(options.standby ? ["standby"] : []), `broker ${options.brokers - 1}`]
    const log = makeServeLog(options.json, Math.max(...names.map((n) => n.length)))
    // The region is serve's to clean up (a head that crashed leaves it) only once its head made it.
    let headMadeRegion = false
    yield* regionGuard(options.region, () => headMadeRegion)
    // Registered before any role: runs after every role is stopped.
    yield* Effect.addFinalizer(() => Effect.sync(() => log.say("stopped", "stopped")))
    const ports = options.port === 0
      ? "any free ports"
      : `port${options.brokers === 1 ? "" : "s"} ${options.port}${
        options.brokers === 1 ? "" : `-${options.port + options.brokers - 1}`
      }`
    log.say(
      `starting a head${options.standby ? ", a standby head" : ""} and ${options.brokers} broker${
        options.brokers === 1 ? "" : "s"
      } on ${options.host} ${ports}, region ${options.region}`,
      "starting",
      {
        region: options.region,
        host: options.host,
        port: options.port,
        brokers: options.brokers,
        standby: options.standby
      }
    )
    const head = yield* startRole(
      log,
      "head",
      [
        "head",
        "--region",
        options.region,
        ...options.topics.flatMap((t) => ["--topic", topicArg(t)]),
        ...dataDirArgs(options)
      ],
      { ...env, ...metricsPortOf(options, 0) },
      HeadEvents
    )
    yield* head.event("ready", READY_MS)
    headMadeRegion = true
    const standby = options.standby
      // The head's metrics port too: the standby serves it once it has taken over (the head's socket died with it).
      ? yield* startRole(
        log,
        "standby",
        ["head", "--standby", "--region", options.region, ...dataDirArgs(options)],
        { ...env, ...metricsPortOf(options, 0) },
        HeadEvents
      )
      : undefined
    if (standby !== undefined) {
      yield* standby.event("standby", READY_MS).pipe(whileAlive([head], "the standby head to stand by"))
      standby.onEvent("ready", (e) =>
        log.say(`the standby head (pid ${standby.pid}) took over: sequencer epoch ${e.epoch}`, "takeover", {
          pid: standby.pid,
          epoch: e.epoch
        }))
    }
    const brokers = yield* Effect.forEach(
      Array.from({ length: options.brokers }, (_, i) =>
        i),
      (i) =>
        startRole(
          log,
          `broker ${i}`,
          [
            "broker",
            "--region",
            options.region,
            "--broker-id",
            `${i}`,
            "--host",
            options.host,
            "--port",
            `${options.port === 0 ? 0 : options.port + i}`,
            ...dataDirArgs(options)
          ],
          { ...env, ...metricsPortOf(options, i + 1) },
          BrokerEvents
        ),
      { concurrency: "unbounded" }
    )
    const listening = yield* Effect.forEach(brokers, (b) =>
      b.event("listening", READY_MS), { concurrency: "unbounded" }).pipe(
        whileAlive([head], "the brokers to listen")
      )
    // Runs first when serve stops (interrupted, or a role died): the roles are stopped after it, brokers first.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() =>
        log.say(`stopping: the brokers, then the head${options.standby ? "s" : ""}`, "stopping")
      )
    )
    const ready: ServeReady = {
      region: options.region,
      brokers: listening.map((e) => ({ host: options.host, port: e.port })),
      topics: options.topics,
      secretFile: defaultSecretPath(options.region),
      credentialFile: defaultCredentialPath(options.region),
      dataDir: options.dataDir,
      pids: { head: head.pid, standby: standby?.pid, brokers: brokers.map((b) => b.pid) },
      metrics: options.metricsPort > 0
        ? [head, ...brokers].map((role, i) => ({
          role: role.role,
          url: `http://127.0.0.1:${options.metricsPort + i}/metrics`
        }))
        : []
    }
    log.announce(readyBanner(ready), "ready", readyEvent(ready))
    // To a `cxlog dashboard` without --targets on this host, as `cxlog run --metrics-port` tells it (until serve ends).
    if (ready.metrics.length > 0) yield* announceTargets(ready.metrics.map((m) => new URL(m.url).host))
    // To a `cxlog serve --detach` that started this one (ServeDetach.ts): it prints the banner and returns.
    report({ event: "ready", ready })
    return yield* watchRoles(head, standby, brokers)
  }).pipe(
    Effect.catchTag("RoleFailed", (failed) => Effect.fail(ServeRoleFailed.of(failed))),
    Effect.scoped
  )
