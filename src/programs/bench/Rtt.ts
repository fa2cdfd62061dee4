/**
 * `cxlog bench --type rtt`: closed-loop latency, one message at a time. A local cluster (head
 * and N brokers, as `cxlog run` starts them) and, in this process, a publisher through the
 * public API — to the brokers over TCP, or with `--local` into the region itself — publish one
 * message, wait for its ACK, repeat. The reference, measured in the
 * same run: a Node TCP ping-pong of the same payload between this process and a child echo
 * server, the two loops taking turns in blocks of BLOCK round trips (so a burst of load on the
 * shared machine weighs on both). `ratio` = ping-pong p50 / ACK p50 (higher is better; 1 = as
 * fast as a TCP round trip). A second publisher of the same kind, opened through the Promise
 * facade (`CxlogPublisher`), runs the same loop with `publish(m, { acked: true })`, as code
 * would. `cpus` is how many CPUs the bench and everything it starts may run on (`taskset`).
 */
import { Console, Context, Effect, Layer } from "effect"
import { fork } from "node:child_process"
import { connect, createServer, type Socket } from "node:net"
import { availableParallelism } from "node:os"
import { CxlogPublisher } from "../../layers/net/CxlogPublisher.js"
import * as PublisherLayers from "../../layers/net/Publisher.js"
import { localPublisher } from "../../layers/Roles.js"
import type { OrderMode } from "../../services/log/OrderModes.js"
import { Publisher } from "../../services/net/Publisher.js"
import { clientSecurity } from "../admin/Users.js"
import { cliEntry } from "../ProgramSettings.js"
import { percentile } from "../report/Percentiles.js"
import { table } from "../report/Table.js"
import { startHeadAndBrokers } from "../run/Cluster.js"
import { logEnv } from "../run/Run.js"
import { benchRegion } from "./BenchRegion.js"
import { BenchPeerFailed } from "./Loopback.js"
import type { BenchPeer } from "./peers/PeerNames.js"
import { PEER_SPECS } from "./peers/PeerSpecs.js"

export interface RttOptions {
  readonly brokers: number
  readonly messageBytes: number
  readonly order: OrderMode
  readonly samples: number
  readonly json: boolean
  /** Reference systems measured in the same interleaved loop (`--peers redis,nats`). */
  readonly peers: ReadonlyArray<BenchPeer>
  /** The publisher is local (`--local`): in this process, appending into the region itself, through no broker. */
  readonly local: boolean
}

/**
 * Round trips run before measuring: at least this many, and for at least WARMUP_MS, per broker
 * (round-robin gives each of N brokers one round trip in N, so each gets as much warming as the
 * one broker of a 1-broker run). V8 takes seconds to optimize every role's hot path (head,
 * broker and publisher each run a few hundred µs of code per round trip), and 200 round trips
 * measured that start-up: p50 fell about 2× between the first thousands and round trips after a
 * few seconds; with 4 brokers and 4 s in all, 1.5–2× (142–212 against 97–144 µs after 20 s).
 */
const WARMUP = 200
const WARMUP_MS = 4_000

/** Round trips per block: the two loops take turns in blocks this long, so both see the same moments of the machine's load. */
const BLOCK = 100

/**
 * Warms every loop (WARMUP round trips each and WARMUP_MS at least, times `warmth`), then runs
 * `samples` round trips of each, the loops taking turns in blocks of BLOCK; the measured
 * durations in ms, per loop.
 */
export const interleaved = <E>(loops: ReadonlyArray<Effect.Effect<unknown, E>>, samples: number, warmth: number) =>
  Effect.gen(function*() {
    const warmUntil = performance.now() + WARMUP_MS * warmth
    for (let i = 0; i < WARMUP * warmth || performance.now() < warmUntil; i++) {
      for (const loop of loops) yield* loop
    }
    const times = loops.map(() => new Float64Array(samples))
    for (let done = 0; done < samples; done += BLOCK) {
      for (let l = 0; l < loops.length; l++) {
        const loop = loops[l]!
        const into = times[l]!
        for (let i = done; i < Math.min(samples, done + BLOCK); i++) {
          const started = performance.now()
          yield* loop
          into[i] = performance.now() - started
        }
      }
    }
    return times
  })
/** A round trip (or the echo server's start, or its connection) that takes longer than this fails the bench rather than hang it. */
const ROUND_TRIP_TIMEOUT_MS = 10_000
/** How often the ping-pong's bound is checked: no timer is touched per round trip. */
const WATCH_MS = 500

const micros = (ms: number) => Math.round(ms * 1000 * 10) / 10

/** p50 / p99 / p99.9 of round trips measured in ms, in µs. */
export const latencyMicros = (samples: Float64Array) => {
  const sorted = Float64Array.from(samples).sort()
  return {
    p50: micros(percentile(sorted, 50)),
    p99: micros(percentile(sorted, 99)),
    p999: micros(percentile(sorted, 99.9))
  }
}

/**
 * A local cluster and two publishers of the kind `options` names: one publish → ACK round trip
 * through the Effect service (`publish` then `flush`), and one through the Promise facade
 * (`publish(m, { acked: true })`). The cluster and both publishers live as long as the scope.
 */
const ackRoundTrips = (options: RttOptions) =>
  Effect.gen(function*() {
    const region = yield* benchRegion()
    const env = {
      // With --local, two local publishers (the service's loop and the facade's): a broker slot each.
      ...logEnv({
        brokers: options.brokers,
        batchBytes: 64 << 10,
        local: options.local,
        localPublishers: options.local ? 2 : 0
      }),
      CXLOG_REGION: region
    }
    const { ports } = yield* startHeadAndBrokers(`rtt:${options.order}:1`, options.brokers, env)
    const layer = options.local
      ? localPublisher({ name: region }, { topic: "rtt", ackLevel: 1 })
      : PublisherLayers.layer({
        brokers: ports.map((port) => ({ host: "127.0.0.1", port })),
        topic: "rtt",
        ackLevel: 1,
        // The brokers authenticate by default: this user's secret file of the region, as `cxlog publish` reads it.
        ...(yield* clientSecurity({
          region,
          secretFile: undefined,
          tlsCa: undefined,
          tlsClientCert: undefined,
          tlsClientKey: undefined
        }))
      })
    const publisher = Context.get(yield* Layer.build(layer), Publisher)
    const facade = yield* Effect.acquireRelease(
      Effect.promise(() => CxlogPublisher.openWith(layer, ROUND_TRIP_TIMEOUT_MS)),
      (p) => Effect.promise(() => p.close({ flush: false }))
    )
    const payload = new Uint8Array(options.messageBytes).fill(7)
    return {
      service: Effect.zipRight(publisher.publish(payload), publisher.flush(ROUND_TRIP_TIMEOUT_MS)),
      facade: Effect.tryPromise({
        try: () => facade.publish(payload, { acked: true }),
        catch: (error) => error as Error
      })
    }
  })

/** A child echo server (`cxlog loopback-echo`) and one TCP ping-pong of `bytes` with it (it lives as long as the scope). */
const pingPongRoundTrip = (bytes: number) =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => fork(cliEntry(), ["loopback-echo"], { stdio: ["ignore", "ignore", "inherit", "ipc"] })),
      (c) => Effect.sync(() => void c.kill("SIGKILL"))
    )
    const port = yield* Effect.async<number, Error>((resume) => {
      child.once("message", (m) => resume(Effect.succeed((m as { port: number }).port)))
      child.once("exit", (code, signal) =>
        resume(
          Effect.fail(
            new BenchPeerFailed({ waitedFor: "the echo server's port", detail: `it exited (${code ?? signal})` })
          )
        ))
    }).pipe(Effect.timeoutFail({
      duration: ROUND_TRIP_TIMEOUT_MS,
      onTimeout: () =>
        new BenchPeerFailed({ waitedFor: "the echo server's port", detail: `none within ${ROUND_TRIP_TIMEOUT_MS} ms` })
    }))
    const socket = yield* Effect.acquireRelease(
      Effect.async<Socket, Error>((resume) => {
        const s = connect({ host: "127.0.0.1", port, noDelay: true }, () => resume(Effect.succeed(s)))
        s.once("error", (error) => resume(Effect.fail(error)))
        // Not connected when interrupted (the bound below): closed here, since the release runs only after success.
        return Effect.sync(() => s.destroy())
      }).pipe(Effect.timeoutFail({
        duration: ROUND_TRIP_TIMEOUT_MS,
        onTimeout: () =>
          new BenchPeerFailed({
            waitedFor: "the connection to the echo server",
            detail: `none within ${ROUND_TRIP_TIMEOUT_MS} ms`
          })
      })),
      (s) => Effect.sync(() => s.destroy())
    )
    const payload = Buffer.alloc(bytes, 7)
    let received = 0
    let arrived: ((outcome: Effect.Effect<void, Error>) => void) | undefined
    // Once the echo connection is gone, the round trip in progress and every later one fail.
    let lost: Error | undefined
    const settle = (outcome: Effect.Effect<void, Error>) => {
      const done = arrived
      arrived = undefined
      done?.(outcome)
    }
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length
      if (received >= bytes && arrived !== undefined) {
        received -= bytes
        settle(Effect.void)
      }
    })
    socket.on("error", (error) => (lost ??= error))
    socket.on("close", () => {
      lost ??= new BenchPeerFailed({ waitedFor: "the echo server's reply", detail: "it closed the connection" })
      settle(Effect.fail(lost))
    })
    // A stalled echo server (stopped, hung) sends no reply and closes nothing: a round trip outstanding
    // through ROUND_TRIP_TIMEOUT_MS of checks without another starting fails, and so does every later one.
    let started = 0
    let watchedStarted = 0
    let waitedMs = 0
    const watch = setInterval(() => {
      waitedMs = arrived !== undefined && started === watchedStarted ? waitedMs + WATCH_MS : 0
      watchedStarted = started
      if (waitedMs < ROUND_TRIP_TIMEOUT_MS) return
      lost ??= new BenchPeerFailed({
        waitedFor: "the echo server's reply",
        detail: `none within ${ROUND_TRIP_TIMEOUT_MS} ms`
      })
      settle(Effect.fail(lost))
    }, WATCH_MS)
    yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(watch)))
    return Effect.async<void, Error>((resume) => {
      if (lost !== undefined) return resume(Effect.fail(lost))
      arrived = resume
      started++
      socket.write(payload)
    })
  })

export const rtt = (options: RttOptions) =>
  Effect.gen(function*() {
    const [ackTimes, facadeTimes, pingPongTimes, ...peerTimes] = yield* Effect.scoped(Effect.gen(function*() {
      // The peers first: a missing one fails the bench before any cluster starts.
      const peers = yield* Effect.forEach(options.peers, (peer) => PEER_SPECS[peer].roundTrip)
      const acks = yield* ackRoundTrips(options)
      const loops: Array<Effect.Effect<unknown, Error>> = [
        acks.service,
        acks.facade,
        yield* pingPongRoundTrip(options.messageBytes)
      ]
      for (const peer of peers) loops.push(peer.append(Buffer.alloc(options.messageBytes, 7)))
      return yield* interleaved(loops, options.samples, Math.max(1, options.brokers))
    }))
    const ack = latencyMicros(ackTimes!)
    const facade = latencyMicros(facadeTimes!)
    const pingPong = latencyMicros(pingPongTimes!)
    const peers = options.peers.map((peer: BenchPeer, i) => ({
      peer,
      label: PEER_SPECS[peer].roundTripLabel(options.messageBytes),
      ...latencyMicros(peerTimes[i]!)
    }))
    const result = {
      bench: "cxlog-rtt",
      publisher: options.local ? "local" : "tcp",
      brokers: options.brokers,
      order: options.order,
      ackLevel: 1,
      messageBytes: options.messageBytes,
      samples: options.samples,
      cpus: availableParallelism(),
      ackRttP50Us: ack.p50,
      ackRttP99Us: ack.p99,
      ackRttP999Us: ack.p999,
      facadeAckRttP50Us: facade.p50,
      facadeAckRttP99Us: facade.p99,
      pingPongP50Us: pingPong.p50,
      pingPongP99Us: pingPong.p99,
      ratio: Math.round((pingPong.p50 / ack.p50) * 1000) / 1000,
      ...(peers.length === 0
        ? {}
        : {
          peers: Object.fromEntries(
            peers.map(({ p50, p99, p999, peer }) => [peer, { rttP50Us: p50, rttP99Us: p99, rttP999Us: p999 }])
          )
        })
    }
    if (!options.json) {
      yield* Console.log(
        table(["closed loop, one message at a time", "p50 µs", "p99 µs", "p99.9 µs"], [
          [
            options.local
              ? `local publish → ACK, ${options.messageBytes} B, order ${options.order}, ack 1 (in the region, no broker)`
              : `publish → ACK, ${options.messageBytes} B, order ${options.order}, ack 1, ${options.brokers} brokers`,
            ack.p50,
            ack.p99,
            ack.p999
          ],
          ["the same through CxlogPublisher: await publish(m, { acked: true })", facade.p50, facade.p99, facade.p999],
          [
            `TCP ping-pong, ${options.messageBytes} B, two processes (reference)`,
            pingPong.p50,
            pingPong.p99,
            pingPong.p999
          ],
          ...peers.map(({ label, p50, p99, p999 }) => [
            label,
            p50,
            p99,
            p999
          ])
        ])
      )
    }
    yield* Console.log(JSON.stringify(result))
    return result
  })

/** The echo side of the ping-pong reference (`cxlog loopback-echo`): reports its port over IPC. */
export const loopbackEcho: Effect.Effect<void> = Effect.async<void>(() => {
  const server = createServer({ noDelay: true }, (socket) => {
    socket.on("data", (chunk) => socket.write(chunk))
    socket.on("error", () => socket.destroy())
  })
  server.listen(0, "127.0.0.1", () => process.send?.({ port: (server.address() as { port: number }).port }))
  // The parent ends the bench by killing this process; losing the parent ends it too.
  process.on("disconnect", () => process.exit(0))
})
