/**
 * What a publisher checks of a message at the call, before it is taken: its value, key and header
 * values are bytes (a JavaScript caller can pass anything; a number taken as bytes would make a
 * batch every broker refuses, over and over). A wrong one is `InvalidMessage`, and nothing is sent.
 */
import { InvalidMessage, type MessageOptions } from "../../services/net/Publisher.js"

const isBytes = (value: unknown): value is Uint8Array => value instanceof Uint8Array
const isStringOrBytes = (value: unknown): boolean => typeof value === "string" || isBytes(value)

const withArticle = (word: string) => `${/^[aeiou]/i.test(word) ? "an" : "a"} ${word}`

/** What `value` is, in words. */
const kindOf = (value: unknown): string => {
  if (value === null || value === undefined) return String(value)
  if (Array.isArray(value)) return "an array"
  if (typeof value !== "object") return withArticle(typeof value)
  const name = (value as { constructor?: { name?: string } }).constructor?.name
  return name === undefined || name === "Object" ? "an object" : withArticle(name)
}

/** Why `payload` with `message`'s key and headers cannot be published, or undefined. */
export const invalidMessage = (payload: unknown, message: MessageOptions | undefined): InvalidMessage | undefined => {
  if (!isBytes(payload)) {
    return new InvalidMessage({
      reason: `its value is ${kindOf(payload)}, not bytes: publish a Uint8Array (CxlogPublisher also takes a string)`
    })
  }
  if (message === undefined) return undefined
  const { headers, key } = message
  if (key !== undefined && !isStringOrBytes(key)) {
    return new InvalidMessage({ reason: `its key is ${kindOf(key)}, not a string or bytes` })
  }
  if (headers === undefined) return undefined
  const pairs: ReadonlyArray<unknown> | undefined = Array.isArray(headers)
    ? headers
    : typeof headers === "object" && headers !== null
    ? Object.entries(headers)
    : undefined
  if (pairs === undefined) {
    return new InvalidMessage({
      reason: `its headers are ${kindOf(headers)}: give [name, value] pairs or an object of name to value`
    })
  }
  for (const pair of pairs) {
    if (!Array.isArray(pair) || typeof pair[0] !== "string" || !isStringOrBytes(pair[1])) {
      return new InvalidMessage({
        reason: `a header is not a name (a string) and a value (a string or bytes): ${
          Array.isArray(pair) ? `${JSON.stringify(String(pair[0]))} = ${kindOf(pair[1])}` : kindOf(pair)
        }`
      })
    }
  }
  return undefined
}
