/**
 * The broker's side of the authentication step: its handle on the credential file
 * (`AuthServer`: the CHALLENGE for a HELLO, the AUTH proof checked, session tokens) and
 * `authenticate`, the step every TCP session's handshake runs (Auth.ts tells the exchange).
 */
import { Effect } from "effect"
import { randomBytes, timingSafeEqual } from "node:crypto"
import { existsSync, statSync } from "node:fs"
import { basename, dirname, join, resolve } from "node:path"
import { credentialsHint } from "./AuthClient.js"
import { CredentialError, exposedModeProblem, readCredentialFile, type UserRecord } from "./AuthCredentialFile.js"
import {
  authMessage,
  b64,
  DEFAULT_ITERATIONS,
  hmac,
  KEY_BYTES,
  newNonce,
  serverSignatureMatches,
  sha256,
  unb64,
  xor
} from "./AuthKeys.js"
import { authDirectory } from "./AuthRegionFiles.js"
import { type Action, authorize } from "./AuthRights.js"
import { AuthProof, Challenge as ChallengeBody, challengeFrame, decodeControl, WireViolation } from "./Control.js"
import { type Frame, FrameType } from "./Frame.js"

/** A pending challenge: what the broker sent, to check the AUTH against. */
export interface Challenge {
  readonly user: UserRecord | undefined
  readonly userName: string
  readonly clientNonce: string
  readonly salt: string
  readonly iterations: number
  readonly nonce: string
}

const processDecoyKey = randomBytes(32)

/**
 * The secret file a head writes beside a region's default credential file (AuthRegionFiles.ts:
 * `<stem>.users` and `<stem>.secret` in this user's private directory), for the credential file
 * at `path`; undefined for any other file, beside which no head writes one.
 */
const localSecretPathOf = (path: string): string | undefined => {
  const name = basename(path)
  if (!name.endsWith(".users")) return undefined
  try {
    if (resolve(dirname(path)) !== resolve(authDirectory())) return undefined
  } catch {
    // No private directory of this user: no head of it wrote a secret file there.
    return undefined
  }
  return join(dirname(path), `${name.slice(0, -".users".length)}.secret`)
}

/**
 * A fake salt for a user the file does not hold, so a CHALLENGE does not reveal who exists.
 * Derived from the file's session key, it is the same on every broker of the file and after a
 * restart, as a real user's salt is; a file without a key gives one stable per process only.
 */
const decoySalt = (fileKey: Buffer | undefined, name: string) =>
  b64(hmac(fileKey ?? processDecoyKey, `cxlog-decoy-salt-1,${name}`).subarray(0, 16))

/** Why a connection of `user` may do nothing more: `AuthServer.current` no longer has it as it signed in. */
export const revokedSinceSignIn = (user: UserRecord): string =>
  `user ${user.name} was removed, or given another secret, since this connection signed in (or the broker cannot use its credential file now): connect again`

/**
 * The broker's handle on a credential file: re-read when it changes (a `cxlog user add` takes
 * effect for the next connection), checked to be private to its owner.
 */
export class AuthServer {
  private users = new Map<string, UserRecord>()
  private sessionKey: Buffer | undefined
  /** The file as last read: its inode, change time (a write, a rename over it or a chmod moves it) and size. */
  private loaded = ""

  private constructor(
    readonly path: string,
    /** The local secret file of the region whose default credential file this is (none for a file given by path). */
    private readonly localSecretPath: string | undefined
  ) {}

  static open(path: string): AuthServer {
    const server = new AuthServer(path, localSecretPathOf(path))
    server.refresh()
    return server
  }

  /** Whether the head wrote a local secret file beside this credential file (it may come and go with the region). */
  hasLocalSecretFile(): boolean {
    return this.localSecretPath !== undefined && existsSync(this.localSecretPath)
  }

  /**
   * Re-reads the file if it changed since the last read (one stat). A file removed, opened to
   * others or unreadable throws, and no user of it is kept: removing the file revokes everyone,
   * and a file others could have changed is trusted no more. (Changes are renamed in whole, so a
   * read never sees half of one.)
   */
  refresh(): void {
    try {
      const stat = statSync(this.path, { throwIfNoEntry: false })
      if (stat === undefined) {
        throw new CredentialError({
          path: this.path,
          reason: "no such file (the head creates it; `cxlog user add` adds users)"
        })
      }
      const exposed = exposedModeProblem(stat.mode)
      if (exposed !== undefined) throw new CredentialError({ path: this.path, reason: exposed })
      const version = `${stat.ino}:${stat.ctimeMs}:${stat.size}`
      if (version === this.loaded) return
      const file = readCredentialFile(this.path)
      this.users = new Map(file.users.map((u) => [u.name, u]))
      this.sessionKey = file.sessionKey === undefined ? undefined : unb64(file.sessionKey)
      this.loaded = version
    } catch (error) {
      this.users = new Map()
      this.sessionKey = undefined
      this.loaded = ""
      throw error
    }
  }

  /**
   * `user`, as a connection signed in, as the file has it now: its rights as they stand (a
   * `cxlog user add` that narrows them holds for the connection's next session or topic), or
   * undefined once the user was removed or given another secret (the connection's proof was for
   * the old one), or the file is no longer usable.
   */
  current(user: UserRecord): UserRecord | undefined {
    try {
      this.refresh()
    } catch {
      return undefined
    }
    const now = this.users.get(user.name)
    return now !== undefined && now.storedKey === user.storedKey ? now : undefined
  }

  /**
   * Why `user` (as its connection signed in) may not do `action` on `target` by the file as it
   * is now, or undefined: what a connection opens after it signed in is checked against the rights
   * of the moment, not those it signed in with.
   */
  deniedNow(user: UserRecord, action: Action, target: string): string | undefined {
    const now = this.current(user)
    return now === undefined ? revokedSinceSignIn(user) : authorize(now, action, target)
  }

  /**
   * The CHALLENGE for a HELLO naming `userName` (a decoy one for a user the file lacks: it fails
   * at `verify`); throws the file's `CredentialError` when it is no longer usable (`refresh`).
   */
  challenge(userName: string, clientNonce: string): Challenge {
    this.refresh()
    const user = this.users.get(userName)
    return {
      user,
      userName,
      clientNonce,
      salt: user?.salt ?? decoySalt(this.sessionKey, userName),
      iterations: user?.iterations ?? DEFAULT_ITERATIONS,
      nonce: newNonce()
    }
  }

  /**
   * The token of a session `user` registered (the WELCOME carries it; the client names it when it
   * attaches the session again, through any broker of this file); undefined for a file without a
   * session key.
   */
  sessionToken(topic: string, clientId: number, sessionEpoch: number, user: string): string | undefined {
    return this.sessionKey === undefined
      ? undefined
      : b64(hmac(this.sessionKey, `cxlog-session-1,${topic},${clientId},${sessionEpoch},${user}`))
  }

  /** Whether `token` shows the session was registered by `user`: always true for a file without a session key. */
  sessionTokenMatches(
    topic: string,
    clientId: number,
    sessionEpoch: number,
    user: string,
    token: string | undefined
  ): boolean {
    const expected = this.sessionToken(topic, clientId, sessionEpoch, user)
    return expected === undefined || serverSignatureMatches(expected, token)
  }

  /** The user when `proof` answers `challenge`, with the WELCOME's signature; else undefined. */
  verify(challenge: Challenge, proof: string): { user: UserRecord; serverSignature: string } | undefined {
    const user = challenge.user
    if (user === undefined) return undefined
    const message = authMessage(challenge.userName, challenge.clientNonce, challenge.nonce)
    const storedKey = unb64(user.storedKey)
    const given = unb64(proof)
    if (given.length !== KEY_BYTES || storedKey.length !== KEY_BYTES) return undefined
    const clientKey = xor(given, hmac(storedKey, message))
    if (!timingSafeEqual(sha256(clientKey), storedKey)) return undefined
    return { user, serverSignature: b64(hmac(unb64(user.serverKey), message)) }
  }
}

/**
 * The authentication step of any TCP connection's handshake, after its opening frame named `who`
 * (user and client nonce): CHALLENGE, the client's AUTH proof checked against the credential
 * file, then the user's right to `access.action` on `access.target` when one is asked (an admin
 * connection's rights are checked per request, a publisher's topics as it opens their sessions).
 * The user and the WELCOME's signature, or null when
 * the connection ended meanwhile; a refusal is the connection's typed error.
 */
export const authenticate = (
  server: AuthServer,
  who: { readonly user?: string | undefined; readonly nonce?: string | undefined },
  access: { readonly action: Action; readonly target: string } | undefined,
  io: { readonly send: (frame: Buffer) => void; readonly next: Effect.Effect<Frame | undefined, WireViolation> }
): Effect.Effect<{ user: UserRecord; serverSignature: string } | null, WireViolation> =>
  Effect.gen(function*() {
    if (who.user === undefined || who.nonce === undefined) {
      return yield* new WireViolation({
        code: "auth-required",
        detail: `this broker requires authentication: ${credentialsHint(server.hasLocalSecretFile())}`
      })
    }
    const challenge = yield* Effect.try({
      try: () => server.challenge(who.user!, who.nonce!),
      catch: (e) => e instanceof CredentialError ? e : new CredentialError({ path: server.path, reason: String(e) })
    }).pipe(
      Effect.tapError((e) => Effect.logWarning(`refusing a handshake: ${e.message}`)),
      Effect.mapError(() =>
        new WireViolation({
          code: "auth-failed",
          detail: "this broker cannot use its credential file now (its log says why): it authenticates nobody"
        })
      )
    )
    io.send(
      challengeFrame(
        new ChallengeBody({ salt: challenge.salt, iterations: challenge.iterations, nonce: challenge.nonce })
      )
    )
    const frame = yield* io.next
    if (frame === undefined) return null
    if (frame.type !== FrameType.AUTH) {
      return yield* new WireViolation({ code: "unexpected-frame", detail: "a CHALLENGE is answered with AUTH" })
    }
    const answer = yield* decodeControl(AuthProof, frame.payload, "bad-handshake")
    const verified = server.verify(challenge, answer.proof)
    if (verified === undefined) {
      return yield* new WireViolation({
        code: "auth-failed",
        detail: `authentication as ${who.user} failed: no such user, or the wrong secret`
      })
    }
    const denied = access === undefined ? undefined : authorize(verified.user, access.action, access.target)
    if (denied !== undefined) {
      return yield* new WireViolation({ code: "forbidden", detail: denied })
    }
    return verified
  })
