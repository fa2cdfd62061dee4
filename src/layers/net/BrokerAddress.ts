/**
 * Where brokers are: `host:port` lists as flags, variables and options give them. Apart from the
 * connection (ClientConnection.ts), so the command table checks a list without loading the client.
 */
import { Data } from "effect"

export interface BrokerAddress {
  readonly host: string
  readonly port: number
}

export const formatAddress = (address: BrokerAddress): string => `${address.host}:${address.port}`

/** An address in a broker list that is not `host:port` with a port in 1..65535. */
export class InvalidBrokerAddress extends Data.TaggedError("InvalidBrokerAddress")<{ readonly address: string }> {
  override get message() {
    return `not a broker address: ${JSON.stringify(this.address)} (host:port, the port in 1..65535)`
  }
}

/**
 * Whether `address` (as an option gives it) can be dialed: a host and a port in 0..65535 (Node's
 * `connect` throws beyond; port 0, a placeholder until a broker's port is known, fails as a refused connection).
 */
export const isBrokerAddress = (address: unknown): address is BrokerAddress => {
  if (typeof address !== "object" || address === null) return false
  const { host, port } = address as { readonly host?: unknown; readonly port?: unknown }
  return typeof host === "string" && host.length > 0 && Number.isInteger(port) && (port as number) >= 0 &&
    (port as number) <= 65535
}

/** An address as an option gave it, in words (for `InvalidBrokerAddress`). */
export const addressText = (address: unknown): string => {
  if (typeof address !== "object" || address === null) return String(address)
  const { host, port } = address as { readonly host?: unknown; readonly port?: unknown }
  return `${String(host)}:${String(port)}`
}

/**
 * Why `brokers`, as a JavaScript caller's options give them, are not a list of broker addresses
 * to dial (none, or one of them not `host:port`), or undefined: one check for every client.
 */
export const brokersProblem = (brokers: unknown): string | undefined => {
  if (!Array.isArray(brokers)) {
    const shown = typeof brokers === "string" ? `${JSON.stringify(brokers)} (a string)` : String(brokers)
    return `brokers is a list of addresses ([{ host: "127.0.0.1", port: 7400 }]), not ${shown}`
  }
  if (brokers.length === 0) return "at least one broker address is needed"
  const bad = brokers.find((address) => !isBrokerAddress(address))
  return bad === undefined
    ? undefined
    : `not a broker address: ${JSON.stringify(addressText(bad))} ({ host, port }: a host and a whole port in 0..65535)`
}

/** `host:port,host:port` (host defaults to 127.0.0.1, so `7400,7401` works); throws `InvalidBrokerAddress`. */
export const parseAddresses = (text: string): ReadonlyArray<BrokerAddress> =>
  text.split(",").map((part) => part.trim()).filter((part) => part.length > 0).map((part) => {
    const colon = part.lastIndexOf(":")
    const host = colon < 0 ? "127.0.0.1" : part.slice(0, colon)
    const port = Number(colon < 0 ? part : part.slice(colon + 1))
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new InvalidBrokerAddress({ address: part })
    return { host, port }
  })

/**
 * Why `text`, a `host:port,…` list as a flag or variable gives it, is not one to dial (an address
 * that is not `host:port`, or none at all), or undefined: one check for every command's `--brokers`.
 */
export const brokerListProblem = (text: string): string | undefined => {
  try {
    return parseAddresses(text).length === 0 ? `no broker address in ${JSON.stringify(text)} (host:port,…)` : undefined
  } catch (error) {
    return (error as InvalidBrokerAddress).message
  }
}
