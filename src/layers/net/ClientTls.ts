/**
 * A client's TLS options (`tls: { ca, cert, key }` of a publisher, a subscriber, an admin or
 * groups client) as Node's TLS takes them, and why they cannot make a TLS context (or, a CA that
 * holds no certificate, could make only one that trusts nothing). Checked when the client opens: at
 * its first connection, a key that is not its certificate's was OpenSSL's bare words thrown out of
 * the socket's making, naming no option.
 */
import { createSecureContext, type SecureContext } from "node:tls"
import { caProblem } from "./CertificateAuthority.js"

/** PEM bytes of a client's TLS (ClientConnection.ts `ClientSecurity["tls"]`). */
export interface ClientTls {
  readonly ca?: Uint8Array
  readonly cert?: Uint8Array
  readonly key?: Uint8Array
}

/** The secure context every connection of `tls` is made with (throws what Node's TLS throws of them). */
export const clientSecureContext = (tls: ClientTls): SecureContext =>
  createSecureContext({
    ...(tls.ca === undefined ? {} : { ca: Buffer.from(tls.ca) }),
    ...(tls.cert === undefined ? {} : { cert: Buffer.from(tls.cert) }),
    ...(tls.key === undefined ? {} : { key: Buffer.from(tls.key) })
  })

const PEM_FIELDS = ["ca", "cert", "key"] as const

/** Why `tls`, as a JavaScript caller may give any value, cannot make a client's TLS connections; undefined when it can. */
export const clientTlsProblem = (tls: unknown): string | undefined => {
  if (tls === undefined) return undefined
  if (typeof tls !== "object" || tls === null) {
    return `tls must be { ca?, cert?, key? } (PEM bytes), not ${String(tls)}`
  }
  const given = tls as Record<string, unknown>
  for (const field of PEM_FIELDS) {
    const value = given[field]
    if (value !== undefined && !(value instanceof Uint8Array) && typeof value !== "string") {
      return `tls.${field} must be PEM bytes (a Buffer or Uint8Array), not ${typeof value}`
    }
  }
  const caUnusable = given.ca === undefined ? undefined : caProblem(given.ca as Uint8Array | string)
  if (caUnusable !== undefined) return `tls.ca ${caUnusable}`
  // One without the other presents no certificate: a broker asking for one would refuse the client, saying less.
  if ((given.cert === undefined) !== (given.key === undefined)) {
    return `tls.${given.cert === undefined ? "key" : "cert"} without tls.${
      given.cert === undefined ? "cert" : "key"
    }: a client certificate needs both, its certificate and its private key`
  }
  try {
    clientSecureContext(given as ClientTls)
    return undefined
  } catch (e) {
    const { code, message } = e as { code?: unknown; message: string }
    if (code === "ERR_OSSL_X509_KEY_VALUES_MISMATCH") {
      return `tls.key is not the private key of tls.cert (${message}): give the key the certificate was made for`
    }
    const named = PEM_FIELDS.filter((f) => given[f] !== undefined).map((f) => `tls.${f}`).join(", ")
    return `${named}: not a TLS configuration Node's TLS takes: ${message}`
  }
}
