/**
 * A CA given to TLS (a client's `tls.ca`, a broker's client CA) checked for what Node's TLS does
 * not check: Node takes any text as a CA without complaint — an empty file, a private key, a
 * certificate cut short — and then verifies nothing against it, so a wrong file showed only at
 * each connection, as a peer's certificate "not signed by the CA given".
 */
import { X509Certificate } from "node:crypto"

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g

/** Why `pem` trusts no certificate as a CA, or undefined when each certificate in it parses. */
export const caProblem = (pem: Uint8Array | string): string | undefined => {
  const text = typeof pem === "string" ? pem : Buffer.from(pem).toString("latin1")
  const blocks = text.match(CERTIFICATE_BLOCK) ?? []
  if (blocks.length === 0) {
    return "holds no certificate (no -----BEGIN CERTIFICATE----- block): give the CA's certificate, as PEM"
  }
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block)
    } catch (e) {
      return `holds a certificate that does not parse (block ${i + 1} of ${blocks.length}): ${(e as Error).message}`
    }
  }
  return undefined
}
