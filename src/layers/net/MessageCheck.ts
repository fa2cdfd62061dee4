/**
 * What a publisher checks of a message at the call, before it is taken: its value, key and header
 * values are bytes (a JavaScript caller can pass anything; a number taken as bytes would make a
 * batch every broker refuses, over and over). A wrong one is `InvalidMessage`, and nothing is sent.
 * The value is checked here; the key and headers where they are encoded (`encodeParts`), in the
 * one pass over them.
 */
import { InvalidMessage } from "../../services/net/Publisher.js"

export const isStringOrBytes = (value: unknown): value is string | Uint8Array =>
  typeof value === "string" || value instanceof Uint8Array

const withArticle = (word: string) => `${/^[aeiou]/i.test(word) ? "an" : "a"} ${word}`

/** What `value` is, in words. */
const kindOf = (value: unknown): string => {
  if (value === null || value === undefined) return String(value)
  if (Array.isArray(value)) return "an array"
  if (typeof value !== "object") return withArticle(typeof value)
  const name = (value as { constructor?: { name?: string } }).constructor?.name
  return name === undefined || name === "Object" ? "an object" : withArticle(name)
}

/** Why `payload` cannot be a message's value, or undefined. */
export const invalidValue = (payload: unknown): InvalidMessage | undefined =>
  payload instanceof Uint8Array ? undefined : new InvalidMessage({
    reason: `its value is ${kindOf(payload)}, not bytes: publish a Uint8Array (CxlogPublisher also takes a string)`
  })

/**
 * Why `options` cannot be a Promise publish's options, or undefined: `publish(value, "acked")` or
 * `{ acked: "yes" }` read as no ACK wanted would resolve at once, its caller taking it for acknowledged.
 */
export const invalidPublishOptions = (options: unknown): InvalidMessage | undefined => {
  if (options === undefined) return undefined
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    return new InvalidMessage({
      reason: `its options are ${kindOf(options)}, not an object ({ key, headers, topic, acked })`
    })
  }
  const { acked } = options as { readonly acked?: unknown }
  return acked === undefined || typeof acked === "boolean"
    ? undefined
    : new InvalidMessage({ reason: `its acked is ${kindOf(acked)}, not true or false` })
}

export const keyNotBytes = (key: unknown): InvalidMessage =>
  new InvalidMessage({ reason: `its key is ${kindOf(key)}, not a string or bytes` })

export const headersNotAList = (headers: unknown): InvalidMessage =>
  new InvalidMessage({
    reason: `its headers are ${kindOf(headers)}: give [name, value] pairs or an object of name to value`
  })

export const headerNotAPair = (pair: unknown): InvalidMessage =>
  new InvalidMessage({
    reason: `a header is not a name (a string) and a value (a string or bytes): ${
      Array.isArray(pair) ? `${JSON.stringify(String(pair[0]))} = ${kindOf(pair[1])}` : kindOf(pair)
    }`
  })
