/**
 * The client's side of the authentication step: what it authenticates with, its proof for a
 * CHALLENGE (and the broker signature it then expects), and the one rule by which every client
 * takes or refuses a broker's acceptance.
 */
import {
  authMessage,
  b64,
  clientKeyOf,
  hmac,
  salted,
  saltedAsync,
  serverKeyOf,
  serverSignatureMatches,
  sha256,
  xor
} from "./AuthKeys.js"

/**
 * How a client without credentials gets them, in the library's words and the CLI's: every
 * "auth-required" says it. `localSecretFile`: the broker's host has the secret file its head
 * wrote for the region's local user, which a client there finds by the region's name; a head
 * writes one only when it makes the region's credential file, not for one it was given that exists.
 */
export const credentialsHint = (localSecretFile: boolean): string =>
  localSecretFile
    ? "give the client the `credentials` option ({ user, secret }, from `cxlog user add`), or, on the broker's host " +
      "as the OS user that ran the head, `region` naming its region to use the local secret file the head wrote; " +
      "on the CLI --secret-file / CXLOG_SECRET_FILE, or --region (docs/security.md)"
    : "give the client the `credentials` option ({ user, secret }, from `cxlog user add`); on the CLI --secret-file / " +
      "CXLOG_SECRET_FILE (docs/security.md)"

/** What a client challenged without credentials says itself: it knows nothing of the broker's host. */
export const CREDENTIALS_HINT = credentialsHint(false)

/** What a client authenticates with: a user and its secret (from a secret file, `NAME:SECRET`). */
export interface Credentials {
  readonly user: string
  readonly secret: string
  /**
   * Found, not given: the region's default secret file (`localCredentials`). It is held to the
   * same rule as given credentials (`brokerAcceptanceProblem`); error messages say which it was.
   */
  readonly implicit?: boolean
}

const proofWith = (s: Buffer, credentials: Credentials, clientNonce: string, challenge: { nonce: string }) => {
  const clientKey = clientKeyOf(s)
  const message = authMessage(credentials.user, clientNonce, challenge.nonce)
  const signature = hmac(sha256(clientKey), message)
  return { proof: b64(xor(clientKey, signature)), serverSignature: b64(hmac(serverKeyOf(s), message)) }
}

type ChallengeParameters = { readonly salt: string; readonly iterations: number; readonly nonce: string }

/** The client's proof for a CHALLENGE, and the broker signature it expects in the WELCOME. */
export const clientProof = (credentials: Credentials, clientNonce: string, challenge: ChallengeParameters) =>
  proofWith(salted(credentials.secret, challenge.salt, challenge.iterations), credentials, clientNonce, challenge)

/** `clientProof` with the PBKDF2 rounds off the JS thread: what the clients use. */
export const clientProofAsync = (credentials: Credentials, clientNonce: string, challenge: ChallengeParameters) =>
  saltedAsync(credentials.secret, challenge.salt, challenge.iterations).then((s) =>
    proofWith(s, credentials, clientNonce, challenge)
  )

/** What a client knows when a broker accepts it (WELCOME to a publisher, SUBSCRIBED to a subscriber, ADMIN_READY to an admin client). */
export interface BrokerAcceptance {
  readonly answer: "WELCOME" | "SUBSCRIBED" | "ADMIN_READY" | "GROUP_READY"
  readonly credentials: Credentials | undefined
  /** The client opted in to brokers that authenticate nobody (`--insecure`, `CXLOG_INSECURE`, the `insecure` option). */
  readonly insecure: boolean
  /** The broker sent a CHALLENGE on this connection. */
  readonly challenged: boolean
  /** The signature the answer must carry, once this client's proof was derived and sent. */
  readonly expectedSignature: string | undefined
  /** The signature the answer carries. */
  readonly signature: string | undefined
}

/**
 * Why a client must not take a broker's acceptance (undefined: it may), one rule for every
 * client. A client with credentials, given or found, takes it only with the broker's proof that
 * it holds the user's keys: a broker that answers without a CHALLENGE is an `--insecure` one or
 * an impostor (say, on a dead broker's port), and found credentials must not turn into a
 * connection that silently authenticates nobody. Only an explicit `insecure` opt-in takes a
 * broker that never challenged, and only for found credentials; a broker that did challenge must
 * always prove itself.
 */
export const brokerAcceptanceProblem = (a: BrokerAcceptance): string | undefined => {
  if (a.credentials === undefined) return undefined
  if (a.expectedSignature !== undefined) {
    return serverSignatureMatches(a.expectedSignature, a.signature)
      ? undefined
      : "did not prove that it holds this user's keys: not the broker of this credential file"
  }
  if (a.challenged) return `sent ${a.answer} before this client answered its CHALLENGE`
  const found = a.credentials.implicit === true
  // The opt-in excuses only credentials the client found for itself: one given credentials asked
  // for authentication, and CXLOG_INSECURE, shared with the brokers, must not quietly drop it.
  if (a.insecure && found) return undefined
  const verb = a.answer === "WELCOME" ? "welcomed" : a.answer === "SUBSCRIBED" ? "subscribed" : "accepted"
  return `${verb} this client without authenticating it (no CHALLENGE): started with --insecure, or not a broker of this credential ` +
    `file; a client holding credentials (${
      found ? "found in the region's secret file" : "given"
    }) requires the broker's proof: ` +
    (found
      ? "to use a broker that authenticates nobody on purpose, connect with --insecure (CXLOG_INSECURE=true, or the library's insecure option)"
      : "given credentials always do (--insecure does not excuse them): to use a broker that authenticates nobody, connect without them")
}
