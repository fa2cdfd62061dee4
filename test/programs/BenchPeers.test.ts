/**
 * `cxlog bench --peers`: the reference systems run beside cxlog in the same bench. Redis
 * (Debian's redis-server, installed here where missing) is started on a loopback port the
 * bench chose and stopped with the bench; a missing server is one line naming the package.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { redisPeer } from "../../src/programs/peers/RedisPeer.js"
import { isPidAlive } from "../../src/layers/region/ProcessInfo.js"
import { ensureDebianBinary } from "../helpers/DebianPackages.js"
import { runCli } from "../helpers/CliRoles.js"

const redis = ensureDebianBinary("redis-server", "redis-server")
const skip = "skip" in redis ? redis.skip : undefined

describe("bench peers", () => {
  it.live("a missing redis-server fails the bench in one line naming the package, before any cluster starts", () =>
    Effect.gen(function*() {
      const { code, stdout, stderr } = yield* runCli(["bench", "--type", "rtt", "--samples", "10", "--peers", "redis"], { CXLOG_REDIS_SERVER: "/nonexistent/redis-server" })
      expect(code).toBe(1)
      expect(stdout).toBe("")
      const lines = stderr.trim().split("\n")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/redis: \/nonexistent\/redis-server not found; install it with: apt-get install redis-server/)
    }))

  it.live("an unknown peer, or peers with a bench type that does not measure them, is a usage error", () =>
    Effect.gen(function*() {
      const unknown = yield* runCli(["bench", "--type", "rtt", "--peers", "kafka"])
      expect(unknown.code).toBe(2)
      expect(unknown.stderr).toMatch(/kafka: the peers are redis/)
      const e2e = yield* runCli(["bench", "--type", "e2e", "--peers", "redis"])
      expect(e2e.code).toBe(2)
      expect(e2e.stderr).toMatch(/--peers is measured with --type rtt/)
    }))

  it.live.skipIf(skip !== undefined)(`a Redis server of the bench's own answers XADD and is gone with the bench${skip === undefined ? "" : ` (skipped: ${skip})`}`, () =>
    Effect.gen(function*() {
      const pid = yield* Effect.scoped(Effect.gen(function*() {
        const peer = yield* redisPeer
        for (let i = 0; i < 20; i++) yield* peer.append(Buffer.alloc(1024, 7))
        expect(isPidAlive(peer.server.pid)).toBe(true)
        expect(peer.server.cpuSeconds()).toBeGreaterThanOrEqual(0)
        return peer.server.pid
      }))
      expect(isPidAlive(pid)).toBe(false)
    }))

  it.live.skipIf(skip !== undefined)("bench --type rtt --peers redis reports Redis's round trip beside cxlog's", () =>
    Effect.gen(function*() {
      const { code, stdout, stderr } = yield* runCli(["bench", "--type", "rtt", "--samples", "200", "--broker-count", "1", "--peers", "redis", "--json"])
      expect(code, stderr).toBe(0)
      const result = JSON.parse(stdout.trim().split("\n").at(-1)!) as { ackRttP50Us: number; peers: { redis: { rttP50Us: number; rttP99Us: number } } }
      expect(result.ackRttP50Us).toBeGreaterThan(0)
      expect(result.peers.redis.rttP50Us).toBeGreaterThan(0)
      expect(result.peers.redis.rttP99Us).toBeGreaterThanOrEqual(result.peers.redis.rttP50Us)
    }), 120_000)
})
