/**
 * Where a server is told to listen, resolved as its listen resolves it (`dns.lookup`, every
 * address): whether that is this host's loopback alone, for a broker beyond it needs TLS and
 * authentication. A name that resolves to nothing is refused as such (ListenHostUnknown), not
 * taken for an address beyond loopback.
 */
import { Data, Effect } from "effect"
import { lookup } from "node:dns/promises"

/** The listening host resolves to no address (a mistyped name: ENOTFOUND). */
export class ListenHostUnknown extends Data.TaggedError("ListenHostUnknown")<{
  readonly host: string
  /** The resolver's code (ENOTFOUND, EAI_AGAIN, …) or its words. */
  readonly reason: string
}> {
  override get message() {
    return `cannot resolve host ${this.host} (${this.reason}): give an address of this host (127.0.0.1, 0.0.0.0, …) or a name that resolves to one`
  }
}

/** 127.0.0.0/8, ::1, and 127.0.0.0/8 mapped into IPv6. */
const isLoopbackAddress = (address: string): boolean =>
  address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.")

/** Whether every address `host` resolves to is a loopback one; ListenHostUnknown when it resolves to none. */
export const isLoopbackHost = (host: string): Effect.Effect<boolean, ListenHostUnknown> =>
  Effect.map(
    Effect.tryPromise({
      try: () => lookup(host, { all: true }),
      catch: (error) => new ListenHostUnknown({ host, reason: (error as NodeJS.ErrnoException).code ?? String(error) })
    }),
    (addresses) => addresses.length > 0 && addresses.every((a) => isLoopbackAddress(a.address))
  )
