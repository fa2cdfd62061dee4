/**
 * What a broker checks of its options before it listens. A JavaScript caller can pass anything,
 * and each of these fails quietly otherwise: a timeout past Node's timers (2^31 - 1 ms, about 24.8
 * days; `Duration.infinity` as "never") fires after 1 ms, so every connection is closed as idle
 * at once; a NaN handshake timeout refuses every client; a NaN limit is no limit; a span that is
 * no duration throws from `Duration.decode`.
 */
import { durationsProblem, withMillis } from "../../Durations.js"
import type { BrokerOptions } from "../../services/net/Broker.js"
import { MAX_TIMER_MS } from "../../SettingText.js"

const shown = (value: unknown): string => (typeof value === "string" ? JSON.stringify(value) : String(value))

const isNumberIn = (value: unknown, min: number, max: number): boolean =>
  typeof value === "number" && value >= min && value <= max

const isIntegerIn = (value: unknown, min: number, max: number): boolean =>
  isNumberIn(value, min, max) && Number.isInteger(value)

/** Why a broker cannot serve with `given`, naming the option, or undefined. */
export const brokerOptionsProblem = (given: BrokerOptions): string | undefined => {
  const notDuration = durationsProblem(given, ["ackInterval", "handshakeTimeout", "idleTimeout"])
  if (notDuration !== undefined) return notDuration
  const options = withMillis(given, ["ackInterval", "handshakeTimeout", "idleTimeout"])
  const spans = [
    ["ackIntervalMs", options.ackIntervalMs, 0, "0: at most one ACK per event-loop turn"],
    ["handshakeTimeoutMs", options.handshakeTimeoutMs, 1, undefined],
    ["idleTimeoutMs", options.idleTimeoutMs, 0, "0: never"]
  ] as const
  for (const [name, ms, min, zero] of spans) {
    if (ms !== undefined && !isNumberIn(ms, min, MAX_TIMER_MS)) {
      return `${name} must be a number of milliseconds from ${min} to ${MAX_TIMER_MS}${
        zero === undefined ? "" : ` (${zero})`
      }, not ${shown(ms)}`
    }
  }
  const counts = [
    ["port", options.port, 0, 65_535],
    ["maxBatchBytes", options.maxBatchBytes, 1, Number.MAX_SAFE_INTEGER],
    ["maxConnections", options.maxConnections, 1, Number.MAX_SAFE_INTEGER],
    ["maxSessions", options.maxSessions, 1, Number.MAX_SAFE_INTEGER],
    ["writeBufferBytes", options.writeBufferBytes, 1, Number.MAX_SAFE_INTEGER]
  ] as const
  for (const [name, value, min, max] of counts) {
    if (value !== undefined && !isIntegerIn(value, min, max)) {
      return `${name} must be a whole number from ${min}${
        max === Number.MAX_SAFE_INTEGER ? " up" : ` to ${max}`
      }, not ${shown(value)}`
    }
  }
  return undefined
}
