/**
 * A publisher's options with their defaults filled in, and what it refuses before it starts:
 * options that cannot work, and messages too big for any batch.
 */
import { Schema } from "effect"
import { randomInt } from "node:crypto"
import { durationsProblem, withMillis } from "../../Durations.js"
import { type NamesOf, unknownOptionsReason } from "../../OptionNames.js"
import { TopicName } from "../../services/log/Topics.js"
import {
  DEFAULT_MAX_IN_FLIGHT_BATCHES,
  InvalidMessage,
  InvalidPublisherOptions,
  type MessageOptions,
  MessageTooLarge,
  type PublisherOptions
} from "../../services/net/Publisher.js"
import { MAX_TIMER_MS } from "../../SettingText.js"
import { encodeParts, firstRecordBytes } from "./BatchPayload.js"
import { brokersProblem } from "./BrokerAddress.js"
import { clientTlsProblem } from "./ClientTls.js"

const isTopicName = Schema.is(TopicName)

/** The options a publisher takes: any other is a caller's mistake (`maxInflightBatches`), not left out in silence. */
const OPTION_NAMES: NamesOf<PublisherOptions> = {
  brokers: true,
  topic: true,
  clientId: true,
  ackLevel: true,
  batchBytes: true,
  lingerMs: true,
  linger: true,
  maxInFlightBatches: true,
  adaptiveWindow: true,
  maxBatchBytes: true,
  onAcknowledged: true,
  spread: true,
  connectTimeoutMs: true,
  connectTimeout: true,
  ackTimeoutMs: true,
  ackTimeout: true,
  reconnectDelayMs: true,
  reconnectDelay: true,
  credentials: true,
  region: true,
  insecure: true,
  tls: true
}

/** A local publisher's: a publisher's but for the brokers, which it has none of. */
const { brokers: _brokers, ...LOCAL_OPTION_NAMES } = OPTION_NAMES

/** Why `given` is not a publisher's options object, or names options no publisher takes (a local one: `local`); undefined when it is fine. */
export const optionsProblem = (given: unknown, local = false): string | undefined => {
  if (typeof given !== "object" || given === null) return `a publisher's options are an object, not ${String(given)}`
  return (local
    ? unknownOptionsReason(given, LOCAL_OPTION_NAMES, "a local publisher")
    : unknownOptionsReason(given, OPTION_NAMES, "a publisher")) ??
    // Before `settingsOf` reads them: `withMillis` throws on one that is no duration.
    durationsProblem(given as PublisherOptions, ["linger", "connectTimeout", "ackTimeout", "reconnectDelay"])
}

export const settingsOf = (given: PublisherOptions) => {
  const options = withMillis(given, ["linger", "connectTimeout", "ackTimeout", "reconnectDelay"])
  return {
    brokers: options.brokers,
    topic: options.topic,
    clientId: options.clientId ?? randomInt(0, 2 ** 32 - 1),
    ackLevel: options.ackLevel ?? 1,
    batchBytes: options.batchBytes ?? 64 << 10,
    lingerMs: options.lingerMs ?? 1,
    window: options.maxInFlightBatches ?? DEFAULT_MAX_IN_FLIGHT_BATCHES,
    adaptiveWindow: options.adaptiveWindow ?? true,
    maxBatchBytes: options.maxBatchBytes ?? 1 << 20,
    spread: options.spread ?? "round-robin",
    connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
    security: {
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      ...(options.insecure === undefined ? {} : { insecure: options.insecure }),
      ...(options.tls === undefined ? {} : { tls: options.tls })
    },
    ackTimeoutMs: options.ackTimeoutMs ?? 30_000,
    reconnectDelayMs: options.reconnectDelayMs ?? 25,
    onAcknowledged: options.onAcknowledged
  }
}

export type PublisherSettings = ReturnType<typeof settingsOf>

/** A value as a JavaScript caller gave it: a string quoted and said to be one (`"1000"`, a string), else as printed. */
const given = (value: unknown): string =>
  typeof value === "string" ? `${JSON.stringify(value)} (a string)` : String(value)

/** Why the options a JavaScript caller can give any value are not of their type, if one is not. */
const typeProblem = (s: PublisherSettings, local: boolean): string | undefined => {
  if (!local) {
    const brokers = brokersProblem(s.brokers)
    if (brokers !== undefined) return brokers
  }
  const numbers = {
    clientId: s.clientId,
    batchBytes: s.batchBytes,
    maxBatchBytes: s.maxBatchBytes,
    maxInFlightBatches: s.window,
    lingerMs: s.lingerMs,
    connectTimeoutMs: s.connectTimeoutMs,
    ackTimeoutMs: s.ackTimeoutMs,
    reconnectDelayMs: s.reconnectDelayMs
  }
  for (const [name, value] of Object.entries(numbers)) {
    if (typeof value !== "number") return `${name} must be a number, not ${given(value)}`
  }
  if (![0, 1, 2].includes(s.ackLevel)) return `ackLevel must be 0, 1 or 2, not ${given(s.ackLevel)}`
  if (typeof s.adaptiveWindow !== "boolean") {
    return `adaptiveWindow must be true or false, not ${given(s.adaptiveWindow)}`
  }
  if (s.spread !== "round-robin" && s.spread !== "sticky") {
    return `spread must be "round-robin" or "sticky", not ${given(s.spread)}`
  }
  return clientTlsProblem(s.security.tls)
}

/** Why `s` cannot make a publisher (undefined: they can); `local`: a local publisher, which has no brokers. */
export const validate = (s: PublisherSettings, local = false): string | undefined => {
  const u32 = (n: number) => Number.isInteger(n) && n >= 0 && n < 2 ** 32
  const mistyped = typeProblem(s, local)
  if (mistyped !== undefined) return mistyped
  if (s.topic !== undefined && !isTopicName(s.topic)) {
    return `topic ${JSON.stringify(s.topic)} is not a topic name (1 to 100 of A-Z a-z 0-9 . _ -)`
  }
  if (!u32(s.clientId)) return "the client id is an unsigned 32-bit integer"
  if (!(s.ackTimeoutMs > 0)) return `ackTimeoutMs ${s.ackTimeoutMs} must be positive`
  if (!(s.connectTimeoutMs > 0 && s.connectTimeoutMs <= MAX_TIMER_MS)) {
    return `connectTimeoutMs ${s.connectTimeoutMs} must be a number of milliseconds from 1 to ${MAX_TIMER_MS}`
  }
  if (!(s.reconnectDelayMs >= 0 && s.reconnectDelayMs <= MAX_TIMER_MS)) {
    return `reconnectDelayMs ${s.reconnectDelayMs} must be a number of milliseconds from 0 to ${MAX_TIMER_MS}`
  }
  if (!Number.isInteger(s.batchBytes) || s.batchBytes < 16 || s.batchBytes % 8 !== 0) {
    return `batchBytes ${s.batchBytes} must be a multiple of 8, at least 16`
  }
  if (s.batchBytes > s.maxBatchBytes) {
    return `batchBytes ${s.batchBytes} exceeds maxBatchBytes ${s.maxBatchBytes}: raise maxBatchBytes with it (cxlog publish --max-batch-bytes), within the brokers' --max-batch-bytes (CXLOG_MAX_BATCH_BYTES)`
  }
  if (!Number.isInteger(s.window) || s.window < 1) return `maxInFlightBatches ${s.window} must be at least 1`
  if (!(s.lingerMs >= 0 && s.lingerMs <= MAX_TIMER_MS)) {
    return `lingerMs ${s.lingerMs} must be a number of milliseconds from 0 to ${MAX_TIMER_MS}`
  }
  return undefined
}

/** A message of `bytes` (value, key and headers) too big for any batch: as the first of one, which also carries the batch's base timestamp. */
export const messageTooLarge = (bytes: number, maxBatchBytes: number): MessageTooLarge | undefined =>
  firstRecordBytes(bytes) > maxBatchBytes ? new MessageTooLarge({ bytes, maxBatchBytes }) : undefined

/**
 * What a publisher made with `options` would refuse before sending anything: the options
 * themselves, or messages of `payloadBytes` carrying `message`'s key and headers. For a caller
 * that knows its messages before it starts one.
 */
export const refusal = (
  options: PublisherOptions,
  payloadBytes: number,
  message?: MessageOptions
): InvalidPublisherOptions | InvalidMessage | MessageTooLarge | undefined => {
  const unknown = optionsProblem(options)
  if (unknown !== undefined) return new InvalidPublisherOptions({ reason: unknown })
  const settings = settingsOf(options)
  const invalid = validate(settings)
  if (invalid !== undefined) return new InvalidPublisherOptions({ reason: invalid })
  const parts = encodeParts(message)
  if (parts instanceof InvalidMessage) return parts
  return messageTooLarge(payloadBytes + (parts?.bytes ?? 0), settings.maxBatchBytes)
}
