/**
 * The client's side of a broker's authentication on a request connection (admin, consumer groups):
 * a CHALLENGE answered with the proof, then the broker's READY checked against what the challenge
 * promised. One piece for every such connection kind, so each checks the broker the same way.
 */
import { Either } from "effect"
import { brokerAcceptanceProblem, clientProofAsync, type Credentials, CREDENTIALS_HINT, newNonce } from "./Auth.js"
import type { BrokerAcceptance } from "./AuthClient.js"
import { authFrame, AuthProof, Challenge, decodeControl } from "./Control.js"

/** A refusal the connection ends with: its code and what to tell the user. */
export interface HandshakeRefusal {
  readonly code: "auth-required" | "auth-failed" | "bad-frame"
  readonly detail: string
}

export const requestHandshake = (options: {
  readonly credentials: Credentials | undefined
  readonly insecure: boolean
  /** The READY frame's name, for the errors. */
  readonly answer: BrokerAcceptance["answer"]
  readonly write: (frame: Uint8Array) => void
  /** Ends the connection (also when the proof is derived after it ended: then nothing is written). */
  readonly fail: (refusal: HandshakeRefusal) => void
  readonly ended: () => boolean
}) => {
  const nonce = options.credentials === undefined ? undefined : newNonce()
  let challenged = false
  let expectedSignature: string | undefined
  return {
    /** The nonce the opening frame carries (none without credentials). */
    nonce,
    /** A CHALLENGE (before READY): the proof is written once derived; a refusal ends the connection. */
    challenge: (payload: Uint8Array, ready: boolean): HandshakeRefusal | undefined => {
      const credentials = options.credentials
      if (credentials === undefined || nonce === undefined) {
        return {
          code: "auth-required",
          detail: `the broker requires authentication and this client has no credentials: ${CREDENTIALS_HINT}`
        }
      }
      if (ready || challenged) return { code: "bad-frame", detail: "an unexpected CHALLENGE" }
      challenged = true
      const challenge = decodeControl(Challenge, payload, "bad-handshake")
      if (Either.isLeft(challenge)) return { code: "bad-frame", detail: `bad CHALLENGE: ${challenge.left.message}` }
      clientProofAsync(credentials, nonce, challenge.right).then(
        (answer) => {
          if (options.ended()) return
          expectedSignature = answer.serverSignature
          options.write(authFrame(0, new AuthProof({ proof: answer.proof })))
        },
        (error: Error) =>
          options.fail({ code: "bad-frame", detail: `cannot derive the proof for the CHALLENGE: ${error.message}` })
      )
      return undefined
    },
    /** What is wrong with the broker's READY carrying `signature` (undefined: it is accepted). */
    readyProblem: (signature: string | undefined): HandshakeRefusal | undefined => {
      const problem = brokerAcceptanceProblem({
        answer: options.answer,
        credentials: options.credentials,
        insecure: options.insecure,
        challenged,
        expectedSignature,
        signature
      })
      return problem === undefined ? undefined : { code: "auth-failed", detail: `the broker ${problem}` }
    }
  }
}
