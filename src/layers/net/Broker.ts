/**
 * The TCP broker over the log core (see services/net/Broker.ts for the behaviour). This file
 * builds its state (BrokerState.ts), listens and wires the parts over it: BrokerAccept
 * (`accept`, `serve`), BrokerIntake (`adopt`), BrokerSession (`session`, the handshake),
 * BrokerAdmission (users' connections, rate budgets), BrokerBatches (`receive`, `append`),
 * BrokerAcks (`acknowledge`). A batch's path:
 * `accept` → `serve` → `session` (handshake) → `receive` → `append` → the log, and back as
 * `acknowledge` → ACK frame. The socket reads in place (`adopt`: Node's `onread` with the
 * buffer chosen per read): a frame header into the reader's 32 bytes, a BATCH payload straight
 * into the Blog space the appender reserved for it (`place` → `Appender.tryReserve`), so the
 * only copy of a payload is the kernel's, into where it will live, and no Buffer is made per
 * read. Past the handshake each read is handled right in the read callback (`receive`): the
 * frame's crc and messages checked, and the batch committed (`append`: `tryAppendWith`, which
 * finds the payload already in place). Only when the log has no room does the connection's
 * fiber take over: it waits in `appendWaiting` with reading stopped, then hands back.
 *
 * What one connection may hold: a frame header, one frame's payload (≤ 4 KiB before the
 * handshake: the reader refuses any frame but HELLO from its header; ≤ `maxBatchBytes` after it,
 * in its own buffer only when a batch could not be received in place), and `writeBufferBytes`
 * of output; the kernel's socket buffer holds the rest, since reading stops whenever nothing
 * consumes. Sessions that exchange nothing for `idleTimeoutMs` are closed, and connections
 * past `maxConnections` (kept below the process's open-file limit) are refused with an ERROR frame.
 */
import { Config, ConfigError, Effect, Either, FiberSet, Layer, Option, type Scope } from "effect"
import { readFileSync } from "node:fs"
import { withMillis } from "../../Durations.js"
import { Coordinator, type CoordinatorShape } from "../../services/control/Coordinator.js"
import { Rings } from "../../services/control/Rings.js"
import { AckTracker } from "../../services/log/AckTracker.js"
import { Appender } from "../../services/log/Appender.js"
import { Consumers } from "../../services/log/Consumers.js"
import { LogReader } from "../../services/log/LogReader.js"
import { Topics } from "../../services/log/Topics.js"
import {
  type BeyondLoopbackLack,
  Broker,
  BrokerListenFailed,
  type BrokerLog,
  type BrokerOptions,
  type BrokerShape,
  type BrokerStats,
  InvalidBrokerOptions
} from "../../services/net/Broker.js"
import { GroupConnections } from "../../services/net/GroupConnections.js"
import { BROKER_SETTINGS } from "../../services/net/NetSettings.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { RegionLayout } from "../../services/RegionLayout.js"
import { settingsConfig } from "../../Settings.js"
import { makeHeadWatch } from "../log/HeadWatch.js"
import { adminServer } from "./AdminServer.js"
import { type AuthServer, CredentialError } from "./Auth.js"
import * as Auth from "./Auth.js"
import { listener, secureContextOf } from "./BrokerAccept.js"
import { holdConnection } from "./BrokerAdmission.js"
import { brokerOptionsProblem } from "./BrokerOptionsCheck.js"
import type { BrokerState, Settings } from "./BrokerState.js"
import { isLoopbackHost } from "./ListenHost.js"
import { subscriptionServer } from "./SubscriptionServer.js"

/** See `BrokerOptions.idleTimeoutMs`. */
export const DEFAULT_IDLE_TIMEOUT_MS = BROKER_SETTINGS.settings.idleTimeoutMs.default

/** A broker made from code listens on any free port unless given one (`config`'s default is BROKER_SETTINGS'). */
const settingsOf = (given: BrokerOptions): Settings => {
  const options = withMillis(given, ["ackInterval", "handshakeTimeout", "idleTimeout"])
  return {
    host: options.host ?? BROKER_SETTINGS.settings.host.default,
    port: options.port ?? 0,
    maxBatchBytes: options.maxBatchBytes ?? BROKER_SETTINGS.settings.maxBatchBytes.default,
    ackIntervalMs: options.ackIntervalMs ?? BROKER_SETTINGS.settings.ackIntervalMs.default,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5_000,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    maxConnections: options.maxConnections ?? BROKER_SETTINGS.settings.maxConnections.default,
    maxSessions: options.maxSessions ?? BROKER_SETTINGS.settings.maxSessions.default,
    writeBufferBytes: options.writeBufferBytes ?? 1 << 20
  }
}

/**
 * What a broker started from code is given to listen beyond loopback, in its options' names and
 * `config`'s variables; `cxlog broker` says its flags instead (BrokerMain.ts).
 */
const beyondLoopbackReason = (lacking: BeyondLoopbackLack) =>
  `refusing to serve beyond loopback without ${lacking}: give \`tls: { cert, key }\` with \`credentials\` ` +
  "(a credential file), or `insecure: true` (from the environment, BrokerLayers.config: CXLOG_TLS_CERT and " +
  "CXLOG_TLS_KEY with CXLOG_CREDENTIALS, or CXLOG_INSECURE; docs/security.md)"

/**
 * Open files the broker process keeps beside its connections (region, doorbell, stdio,
 * libuv's own, the listener, refused connections in their grace period): `maxConnections`
 * stays this far below the open-file limit, so the connection past it still gets its ERROR
 * frame instead of an accept that fails (EMFILE) and a silently dropped connection.
 */
const RESERVED_FILES = 64

/** The process's soft limit of open files (Linux: /proc/self/limits); undefined where unknown or unlimited. */
const openFileLimit = (): number | undefined => {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"))
    return match === null ? undefined : Number(match[1])
  } catch {
    return undefined
  }
}

/**
 * The request ring through which this process asks `coordinator` (its process slot's), when it
 * joined one over a region: a change forwarded to the head says, if the head is lost, whether the
 * head had read it (AdminServer.ts).
 */
const requestRingOf = (coordinator: CoordinatorShape | undefined) =>
  Effect.gen(function*() {
    const rings = Option.getOrUndefined(yield* Effect.serviceOption(Rings))
    const layout = Option.getOrUndefined(yield* Effect.serviceOption(RegionLayout))
    if (coordinator === undefined || rings === undefined || layout === undefined) return undefined
    // A ring it cannot inspect only leaves that unsaid.
    return yield* rings.inspect(layout.requestRing(coordinator.self.slot)).pipe(Effect.orElseSucceed(() => undefined))
  })

export const make = (
  options: BrokerOptions
): Effect.Effect<BrokerShape, BrokerListenFailed | InvalidBrokerOptions, BrokerLog | Scope.Scope> =>
  Effect.gen(function*() {
    const invalid = brokerOptionsProblem(options)
    if (invalid !== undefined) return yield* new InvalidBrokerOptions({ reason: invalid })
    const appender = yield* Appender
    const { brokerId } = appender
    const requested = settingsOf(options)
    const fileLimit = openFileLimit()
    const settings: Settings = fileLimit !== undefined && requested.maxConnections > fileLimit - RESERVED_FILES
      ? { ...requested, maxConnections: Math.max(1, fileLimit - RESERVED_FILES) }
      : requested
    if (settings.maxConnections < requested.maxConnections) {
      yield* Effect.logWarning(
        `broker ${brokerId}: serving at most ${settings.maxConnections} connections, not ${requested.maxConnections}: the process may open ${fileLimit} files (ulimit -n)`
      )
    }
    const refuse = (reason: string) => new BrokerListenFailed({ host: settings.host, port: settings.port, reason })
    const auth: AuthServer | undefined = options.credentials === undefined ? undefined : yield* Effect.try({
      try: () => Auth.AuthServer.open(options.credentials!),
      catch: (e) =>
        refuse(e instanceof CredentialError ? e.message : `credentials ${options.credentials}: ${String(e)}`)
    })
    const secure = options.tls === undefined ? undefined : yield* Effect.try({
      try: () => secureContextOf(options.tls!),
      catch: (e) =>
        refuse(
          `cannot load its TLS certificate ${options.tls!.cert} and key ${options.tls!.key}: ${(e as Error).message}`
        )
    })
    // A broker given the process's LogReader serves subscribers too (SubscriptionServer.ts).
    const reader = Option.getOrUndefined(yield* Effect.serviceOption(LogReader))
    const consumers = Option.getOrUndefined(yield* Effect.serviceOption(Consumers))
    // A broker that joined the head's coordinator forwards topic changes to it (AdminServer.ts), watching the head meanwhile.
    const coordinator = Option.getOrUndefined(yield* Effect.serviceOption(Coordinator))
    const region = Option.getOrUndefined(yield* Effect.serviceOption(CxlMemory))
    const requests = yield* requestRingOf(coordinator)
    const topics = yield* Topics
    // A broker given the region's consumer groups serves their members too (layers/groups/GroupServer.ts).
    const groups = Option.getOrUndefined(yield* Effect.serviceOption(GroupConnections))
    // A name that resolves to nothing is refused as such, before it could pass for an address beyond loopback.
    const loopback = yield* Effect.mapError(isLoopbackHost(settings.host), (unknown) => refuse(unknown.message))
    if (!loopback && options.insecure !== true && (auth === undefined || secure === undefined)) {
      const lacking: BeyondLoopbackLack = secure !== undefined
        ? "authentication"
        : auth !== undefined
        ? "TLS"
        : "TLS and authentication"
      return yield* new BrokerListenFailed({
        host: settings.host,
        port: settings.port,
        reason: beyondLoopbackReason(lacking),
        beyondLoopback: lacking
      })
    }
    // Authentication is the default, as `cxlog broker`'s: an open broker is asked for by name.
    if (auth === undefined && options.insecure !== true) {
      return yield* refuse(
        "no credentials: give `credentials` (a credential file: docs/security.md), or `insecure: true` to let every client in"
      )
    }
    const broker: BrokerState = {
      brokerId,
      settings,
      limits: options.limits,
      appender,
      acks: yield* AckTracker,
      topics,
      auth,
      userUse: new Map(),
      sessionOwners: new Map(),
      subscriptions: subscriptionServer({
        brokerId,
        reader,
        consumers,
        auth,
        holdConnection: (user) => holdConnection(broker, user),
        idleTimeoutMs: settings.idleTimeoutMs,
        topics
      }),
      admin: adminServer({
        brokerId,
        topics,
        coordinator,
        requests,
        head: region === undefined ? undefined : makeHeadWatch(region, 0),
        auth,
        holdConnection: (user) => holdConnection(broker, user),
        idleTimeoutMs: settings.idleTimeoutMs
      }),
      groups: groups?.server({
        brokerId,
        auth,
        holdConnection: (user) => holdConnection(broker, user),
        idleTimeoutMs: settings.idleTimeoutMs
      }),
      sockets: new Set(),
      handshaking: new Set(),
      held: new Set(),
      counts: { accepted: 0, sessions: 0, batches: 0, messages: 0, bytes: 0, ackFrames: 0, fencedFrames: 0 },
      rejected: {},
      run: yield* FiberSet.makeRuntime<never>()
    }
    const server = listener(broker, secure)

    yield* Effect.acquireRelease(
      Effect.async<void, BrokerListenFailed>((resume) => {
        const onError = (error: Error & { readonly code?: string }) =>
          resume(
            Effect.fail(
              new BrokerListenFailed({
                host: settings.host,
                port: settings.port,
                reason: error.code === "EADDRINUSE"
                  ? `port ${settings.port} is taken by another process (EADDRINUSE): give the broker another port (--port, CXLOG_BROKER_PORT, BrokerOptions.port), or stop what listens there (\`ss -ltnp 'sport = :${settings.port}'\` names it)`
                  : error.message
              })
            )
          )
        server.once("error", onError)
        server.listen(settings.port, settings.host, () => {
          server.off("error", onError)
          resume(Effect.void)
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          for (const socket of broker.sockets) socket.destroy()
          for (const socket of broker.handshaking) socket.destroy()
        })
    )
    server.on("error", (error) => broker.run(Effect.logError(`broker ${brokerId}: server error: ${error.message}`)))
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : settings.port
    yield* Effect.logDebug(`broker ${brokerId} listening on ${settings.host}:${port}`)

    return {
      brokerId,
      host: settings.host,
      port,
      stats: (): BrokerStats => {
        let queuedBytes = 0
        for (const holds of broker.held) queuedBytes += holds()
        return { connections: broker.sockets.size, ...broker.counts, queuedBytes, rejected: { ...broker.rejected } }
      }
    }
  })

export const layer = (
  options: BrokerOptions
): Layer.Layer<Broker, BrokerListenFailed | InvalidBrokerOptions, BrokerLog> => Layer.scoped(Broker, make(options))

/**
 * Options from the environment: the variables of BROKER_SETTINGS (services/net/NetSettings.ts;
 * credentials or insecure: one of them is needed). TLS takes a certificate and its key together,
 * and a client CA only beside them: a half-given TLS is refused here, not served in the clear.
 */
export const config: Config.Config<BrokerOptions> = settingsConfig(BROKER_SETTINGS.settings).pipe(
  Config.mapOrFail(({ credentials, tlsCert, tlsKey, tlsClientCa, ...options }) => {
    const { tlsCert: cert, tlsKey: key, tlsClientCa: clientCa } = BROKER_SETTINGS.settings
    if ((tlsCert === undefined) !== (tlsKey === undefined)) {
      return Either.left(ConfigError.InvalidData([], `${cert.env} and ${key.env} go together: give both, or neither`))
    }
    if (tlsClientCa !== undefined && tlsCert === undefined) {
      return Either.left(ConfigError.InvalidData([], `${clientCa.env} needs ${cert.env} and ${key.env}`))
    }
    return Either.right({
      ...options,
      ...(credentials === undefined ? {} : { credentials }),
      ...(tlsCert === undefined || tlsKey === undefined
        ? {}
        : { tls: { cert: tlsCert, key: tlsKey, ...(tlsClientCa === undefined ? {} : { clientCa: tlsClientCa }) } })
    })
  })
)

export const layerConfig: Layer.Layer<
  Broker,
  BrokerListenFailed | InvalidBrokerOptions | ConfigError.ConfigError,
  BrokerLog
> = Layer.scoped(
  Broker,
  Effect.flatMap(config, make)
)
