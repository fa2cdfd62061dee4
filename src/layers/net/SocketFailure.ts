/**
 * What a client's connection to a broker says when its socket fails. Node gives OpenSSL's own
 * words for a TLS handshake that failed (`…:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13
 * alert certificate required:…`); the failures a user meets setting TLS up are told here as what
 * to change, the library's option and the CLI's flag named, with Node's words kept after them.
 */
import { X509Certificate } from "node:crypto"

/** The last line of OpenSSL's text: its reason, without the library's source position. */
const opensslReason = (message: string): string => {
  const reason = /SSL routines:[^:]*:([^:]+)/.exec(message)?.[1]
  return reason ?? message
}

const HINTS: ReadonlyArray<readonly [RegExp, string]> = [
  [
    /alert certificate required|alert handshake failure/,
    "the broker asks for a client certificate: give tls.cert and tls.key (--tls-client-cert, --tls-client-key)"
  ],
  [
    /alert unknown ca|alert bad certificate|alert certificate unknown/,
    "the broker refused this client's certificate: it is not signed by the CA the broker trusts (its --tls-client-ca)"
  ],
  [
    /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/,
    "the broker's certificate is not signed by the CA given (tls.ca, --tls-ca)"
  ],
  [/^CERT_HAS_EXPIRED$/, "the broker's certificate has expired"],
  [/^ERR_TLS_CERT_ALTNAME_INVALID$/, "the broker's certificate does not name the host connected to"],
  [
    /wrong version number|packet length too long/,
    "the broker does not speak TLS on this port: leave tls (--tls-ca) out"
  ]
]

/** The words for a client socket's `error`. */
export const socketFailureText = (error: Error & { readonly code?: string }): string => {
  const code = error.code ?? ""
  for (const [pattern, hint] of HINTS) {
    if (pattern.test(code) || pattern.test(error.message)) return `${hint} (${opensslReason(error.message)})`
  }
  return error.message
}

/** How a client made a connection the broker closed before its first answer: plain, or under TLS with these. */
export type MadeWith = "plain" | { readonly cert?: Uint8Array | undefined }

/** Why the client's own certificate may be refused now: undefined while it is valid (or does not parse). */
const certificateOutOfDate = (cert: Uint8Array): string | undefined => {
  let validity: { readonly from: Date; readonly to: Date }
  try {
    const parsed = new X509Certificate(cert)
    validity = { from: new Date(parsed.validFrom), to: new Date(parsed.validTo) }
  } catch {
    return undefined
  }
  const now = Date.now()
  return now > validity.to.getTime()
    ? `it expired on ${validity.to.toISOString()}`
    : now < validity.from.getTime()
    ? `it is valid only from ${validity.from.toISOString()}`
    : undefined
}

/**
 * The words for a broker that closed the connection; `unanswered`, how a connection it closed
 * before its first answer was made (undefined once it answered): plain, as a broker that serves
 * TLS closes them, or TLS with a client certificate, which under TLS 1.3 a broker refuses after
 * the client's side of the handshake is done (the client sees the close, not the alert). A client
 * certificate out of its validity dates is named as the likely cause; the client can tell that
 * much, the broker's reason it cannot.
 */
export const brokerClosedText = (unanswered?: MadeWith): string => {
  if (unanswered === "plain") {
    return "the broker closed the connection before answering (a broker that serves TLS closes plain connections: give tls.ca, --tls-ca)"
  }
  if (unanswered?.cert === undefined) return "the broker closed the connection"
  const outOfDate = certificateOutOfDate(unanswered.cert)
  return `the broker closed the connection after the TLS handshake, before answering: it may have refused this client's certificate (${
    outOfDate === undefined
      ? "one its --tls-client-ca does not sign"
      : `${outOfDate}: give one valid now`
  }: tls.cert, --tls-client-cert)`
}
