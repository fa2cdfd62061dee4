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

/** `host:port,host:port` (host defaults to 127.0.0.1, so `7400,7401` works); throws `InvalidBrokerAddress`. */
export const parseAddresses = (text: string): ReadonlyArray<BrokerAddress> =>
  text.split(",").map((part) => part.trim()).filter((part) => part.length > 0).map((part) => {
    const colon = part.lastIndexOf(":")
    const host = colon < 0 ? "127.0.0.1" : part.slice(0, colon)
    const port = Number(colon < 0 ? part : part.slice(colon + 1))
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new InvalidBrokerAddress({ address: part })
    return { host, port }
  })
