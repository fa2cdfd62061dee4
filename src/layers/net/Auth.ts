/**
 * Who may use a broker, and for what: the credential file, the salted challenge–response every
 * TCP session runs (SCRAM-SHA-256 in spirit), per-topic rights and per-user limits. One module
 * for any TCP session — publishers now, remote subscribers later — so the handshake step
 * (`AuthServer.challenge` → `AuthServer.verify`) and the rights check (`authorize`) are the
 * same everywhere.
 *
 * The exchange: the client's HELLO names its user and a fresh client nonce; the broker answers
 * CHALLENGE with the user's salt, iteration count and a fresh server nonce; the client sends
 * AUTH with a proof, ClientKey XOR HMAC(StoredKey, message), where message binds both nonces and
 * the user; the broker recomputes, checks H(ClientKey) = StoredKey and answers WELCOME with its
 * own signature, HMAC(ServerKey, message), which the client checks (an impostor broker without
 * the credential file cannot make it). The file holds StoredKey and ServerKey only, never the
 * secret, and the secret never crosses the wire; a captured handshake replayed later fails,
 * since the broker's nonce differs every time.
 */
import { Data, Effect } from "effect"
import { createHash, createHmac, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto"
import { closeSync, fstatSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs"
import { tmpdir, userInfo } from "node:os"
import { basename, dirname, join } from "node:path"
import { AuthProof, Challenge as ChallengeBody, challengeFrame, decodeControl, WireViolation } from "./Control.js"
import { type Frame, FrameType } from "./Frame.js"
import { procStat } from "../region/ProcessInfo.js"

/** A refused handshake or action; the broker sends its code in an ERROR frame. */
export type AuthErrorCode = "auth-required" | "auth-failed" | "forbidden" | "rate-limited" | "too-many-connections"

export type Action = "publish" | "read" | "consume"

/** Per-user limits, per broker process; 0 or absent: unlimited. */
export interface UserLimits {
  readonly messagesPerSecond?: number
  readonly bytesPerSecond?: number
  readonly connections?: number
}

/** One user of the credential file: derived keys only (base64), rights as topic patterns (`*` matches any run of characters). */
export interface UserRecord {
  readonly name: string
  readonly salt: string
  readonly iterations: number
  readonly storedKey: string
  readonly serverKey: string
  readonly publish: ReadonlyArray<string>
  readonly read: ReadonlyArray<string>
  /** Named consumers the user may join and commit for (on topics it may read); absent (files of older builds): any. */
  readonly consume?: ReadonlyArray<string>
  readonly limits?: UserLimits
}

export interface CredentialFile {
  readonly version: 1
  readonly users: ReadonlyArray<UserRecord>
  /**
   * The brokers' key for session tokens (base64, random; `upsertUser` adds it to a file without
   * one): a token binds a publisher session to the user that registered it, checkable by every
   * broker of the file and made by none of its users.
   */
  readonly sessionKey?: string
  /** The region a default credential file serves (`RegionBinding`); none in a file named by `--credentials`. */
  readonly region?: RegionBinding
}

/**
 * The one region a region's default credential file (and its secret file) belongs to: its name
 * and creation time (the superblock's). `createdAtMs` is 0 while the head that made the files
 * has not created the region yet; `pid` and `start` (its start tag) name the head that made or
 * bound them. A region made again under the same name is another region: these are not its files.
 */
export interface RegionBinding {
  readonly name: string
  readonly createdAtMs: number
  readonly pid: number
  readonly start: number
}

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

export class CredentialError extends Data.TaggedError("CredentialError")<{ readonly path: string; readonly reason: string }> {
  override get message() {
    return `credentials ${this.path}: ${this.reason}`
  }
}

/** PBKDF2 rounds for new users: the client pays them once per connection (cached per salt), the broker never. */
export const DEFAULT_ITERATIONS = 4096
const KEY_BYTES = 32

const hmac = (key: Uint8Array, text: string | Uint8Array) => createHmac("sha256", key).update(text).digest()
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest()
const xor = (a: Uint8Array, b: Uint8Array) => {
  const out = Buffer.alloc(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!
  return out
}
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64")
const unb64 = (text: string) => Buffer.from(text, "base64")

const saltedCache = new Map<string, Buffer>()
const saltedKey = (secret: string, salt: string, iterations: number) => `${salt}:${iterations}:${createHash("sha256").update(secret).digest("base64")}`
const remember = (key: string, value: Buffer) => {
  if (saltedCache.size > 64) saltedCache.clear()
  saltedCache.set(key, value)
  return value
}
/** The salted secret (PBKDF2), cached so a reconnecting client does not pay the rounds again. */
const salted = (secret: string, salt: string, iterations: number): Buffer => {
  const key = saltedKey(secret, salt, iterations)
  return saltedCache.get(key) ?? remember(key, pbkdf2Sync(secret, unb64(salt), iterations, KEY_BYTES, "sha256"))
}
/** `salted` off the JS thread (libuv's pool): a client's event loop keeps serving its other connections meanwhile. */
const saltedAsync = (secret: string, salt: string, iterations: number): Promise<Buffer> => {
  const key = saltedKey(secret, salt, iterations)
  const cached = saltedCache.get(key)
  if (cached !== undefined) return Promise.resolve(cached)
  return new Promise((resolve, reject) =>
    pbkdf2(secret, unb64(salt), iterations, KEY_BYTES, "sha256", (error, value) => error === null ? resolve(remember(key, value)) : reject(error))
  )
}

const clientKeyOf = (saltedSecret: Uint8Array) => hmac(saltedSecret, "Client Key")
const serverKeyOf = (saltedSecret: Uint8Array) => hmac(saltedSecret, "Server Key")

/** The text both sides sign: the user and both nonces, so a proof is good for one handshake only. */
const authMessage = (user: string, clientNonce: string, serverNonce: string) => `cxlog-auth-1,${user},${clientNonce},${serverNonce}`

export const newNonce = (): string => randomBytes(18).toString("base64")
export const newSecret = (): string => randomBytes(24).toString("base64url")

/** A user record for `secret` (fresh salt): what `cxlog user add` and the head write. */
export const userRecord = (
  name: string,
  secret: string,
  rights: { publish: ReadonlyArray<string>; read: ReadonlyArray<string>; consume?: ReadonlyArray<string> },
  limits?: UserLimits,
  iterations = DEFAULT_ITERATIONS
): UserRecord => {
  const salt = b64(randomBytes(16))
  const s = salted(secret, salt, iterations)
  return {
    name,
    salt,
    iterations,
    storedKey: b64(sha256(clientKeyOf(s))),
    serverKey: b64(serverKeyOf(s)),
    publish: rights.publish,
    read: rights.read,
    ...(rights.consume === undefined ? {} : { consume: rights.consume }),
    ...(limits === undefined ? {} : { limits })
  }
}

// ---- the client's side ------------------------------------------------------------------------

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
  saltedAsync(credentials.secret, challenge.salt, challenge.iterations).then((s) => proofWith(s, credentials, clientNonce, challenge))

/** Whether the WELCOME's signature is the one only a holder of the user's keys can make. */
export const serverSignatureMatches = (expected: string, got: string | undefined): boolean => {
  if (got === undefined) return false
  const a = unb64(expected)
  const b = unb64(got)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** What a client knows when a broker accepts it (WELCOME to a publisher, SUBSCRIBED to a subscriber). */
export interface BrokerAcceptance {
  readonly answer: "WELCOME" | "SUBSCRIBED"
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
  const verb = a.answer === "WELCOME" ? "welcomed" : "subscribed"
  return `${verb} this client without authenticating it (no CHALLENGE): started with --insecure, or not a broker of this credential ` +
    `file; a client holding credentials (${found ? "found in the region's secret file" : "given"}) requires the broker's proof: ` +
    (found
      ? "to use a broker that authenticates nobody on purpose, connect with --insecure (CXLOG_INSECURE=true, or the library's insecure option)"
      : "given credentials always do (--insecure does not excuse them): to use a broker that authenticates nobody, connect without them")
}

// ---- the broker's side ------------------------------------------------------------------------

/** Matches `*` as any run of characters; everything else literally. */
const patternMatches = (pattern: string, topic: string): boolean => {
  if (!pattern.includes("*")) return pattern === topic
  const parts = pattern.split("*")
  if (!topic.startsWith(parts[0]!) || !topic.endsWith(parts[parts.length - 1]!)) return false
  let at = parts[0]!.length
  for (let i = 1; i < parts.length - 1; i++) {
    const found = topic.indexOf(parts[i]!, at)
    if (found < 0) return false
    at = found + parts[i]!.length
  }
  return at <= topic.length - parts[parts.length - 1]!.length
}

/**
 * The one rights check of every TCP session: undefined when `user` may `action` on `target` (a
 * topic; for `consume`, a named consumer's name), else why not.
 */
export const authorize = (user: UserRecord, action: Action, target: string): string | undefined => {
  const rights = action === "publish" ? user.publish : action === "read" ? user.read : user.consume ?? ["*"]
  if (rights.some((p) => patternMatches(p, target))) return undefined
  const what = action === "publish" ? `publish to topic ${target}` : action === "read" ? `read from topic ${target}` : `join consumer ${target}`
  return `user ${user.name} may not ${what} (its ${action} rights: ${rights.join(", ") || "none"})`
}

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
 * A fake salt for a user the file does not hold, so a CHALLENGE does not reveal who exists.
 * Derived from the file's session key, it is the same on every broker of the file and after a
 * restart, as a real user's salt is; a file without a key gives one stable per process only.
 */
const decoySalt = (fileKey: Buffer | undefined, name: string) => b64(hmac(fileKey ?? processDecoyKey, `cxlog-decoy-salt-1,${name}`).subarray(0, 16))

/**
 * The broker's handle on a credential file: re-read when it changes (a `cxlog user add` takes
 * effect for the next connection), checked to be private to its owner.
 */
export class AuthServer {
  private users = new Map<string, UserRecord>()
  private sessionKey: Buffer | undefined
  /** The file as last read: its inode, change time (a write, a rename over it or a chmod moves it) and size. */
  private loaded = ""

  private constructor(readonly path: string) {}

  static open(path: string): AuthServer {
    const server = new AuthServer(path)
    server.refresh()
    return server
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
      if (stat === undefined) throw new CredentialError({ path: this.path, reason: "no such file (the head creates it; `cxlog user add` adds users)" })
      if ((stat.mode & 0o077) !== 0) {
        throw new CredentialError({ path: this.path, reason: `mode ${(stat.mode & 0o777).toString(8)} lets others read it: chmod 600 it` })
      }
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
    return this.sessionKey === undefined ? undefined : b64(hmac(this.sessionKey, `cxlog-session-1,${topic},${clientId},${sessionEpoch},${user}`))
  }

  /** Whether `token` shows the session was registered by `user`: always true for a file without a session key. */
  sessionTokenMatches(topic: string, clientId: number, sessionEpoch: number, user: string, token: string | undefined): boolean {
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
 * The authentication step of any TCP session's handshake, after its opening frame named `who`
 * (user and client nonce): CHALLENGE, the client's AUTH proof checked against the credential
 * file, then the user's right to `action` on `topic`. The user and the WELCOME's signature, or
 * null when the connection ended meanwhile; a refusal is the connection's typed error.
 */
export const authenticate = (
  server: AuthServer,
  who: { readonly user?: string | undefined; readonly nonce?: string | undefined },
  action: Action,
  topic: string,
  io: { readonly send: (frame: Buffer) => void; readonly next: Effect.Effect<Frame | undefined, WireViolation> }
): Effect.Effect<{ user: UserRecord; serverSignature: string } | null, WireViolation> =>
  Effect.gen(function*() {
    if (who.user === undefined || who.nonce === undefined) {
      return yield* new WireViolation({
        code: "auth-required",
        detail: "this broker requires authentication: give the client a secret file (--secret-file / CXLOG_SECRET_FILE; docs/security.md)"
      })
    }
    const challenge = yield* Effect.try({
      try: () => server.challenge(who.user!, who.nonce!),
      catch: (e) => e instanceof CredentialError ? e : new CredentialError({ path: server.path, reason: String(e) })
    }).pipe(
      Effect.tapError((e) => Effect.logWarning(`refusing a handshake: ${e.message}`)),
      Effect.mapError(() =>
        new WireViolation({ code: "auth-failed", detail: "this broker cannot use its credential file now (its log says why): it authenticates nobody" })
      )
    )
    io.send(challengeFrame(new ChallengeBody({ salt: challenge.salt, iterations: challenge.iterations, nonce: challenge.nonce })))
    const frame = yield* io.next
    if (frame === undefined) return null
    if (frame.type !== FrameType.AUTH) return yield* new WireViolation({ code: "unexpected-frame", detail: "a CHALLENGE is answered with AUTH" })
    const answer = yield* decodeControl(AuthProof, frame.payload, "bad-handshake")
    const verified = server.verify(challenge, answer.proof)
    if (verified === undefined) {
      return yield* new WireViolation({ code: "auth-failed", detail: `authentication as ${who.user} failed: no such user, or the wrong secret` })
    }
    const denied = authorize(verified.user, action, topic)
    if (denied !== undefined) return yield* new WireViolation({ code: "forbidden", detail: denied })
    return verified
  })

// ---- limits -----------------------------------------------------------------------------------

/**
 * A rate over about a second: `take` succeeds while the budget is not in debt (a batch may
 * overdraw it, so any batch size passes at a low rate), and the budget refills at `perSecond`
 * up to one second's worth.
 */
export class RateBudget {
  private tokens: number
  private at = performance.now()
  constructor(readonly perSecond: number) {
    this.tokens = perSecond
  }
  take(amount: number): boolean {
    const now = performance.now()
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.at) / 1000) * this.perSecond)
    this.at = now
    if (this.tokens <= 0) return false
    this.tokens -= amount
    return true
  }
}

// ---- files ------------------------------------------------------------------------------------

/**
 * This user's private directory for credential and secret files: `$XDG_RUNTIME_DIR/cxlog`, else
 * `<tmp>/cxlog-auth-<uid>`; created 0700 and refused unless it is a directory of this user that
 * nobody else may enter (a squatted one in a shared /tmp would leak secrets).
 */
export const authDirectory = (): string => {
  const runtime = process.env["XDG_RUNTIME_DIR"]
  const dir = runtime !== undefined && runtime !== "" ? join(runtime, "cxlog") : join(tmpdir(), `cxlog-auth-${process.getuid?.() ?? 0}`)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const stat = lstatSync(dir)
  const uid = process.getuid?.()
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o077) !== 0) {
    throw new CredentialError({ path: dir, reason: "not a private directory of this user (owner and mode 700 expected)" })
  }
  return dir
}

const fileStem = (region: string) => region.replace(/^\/+/, "").replace(/[^A-Za-z0-9._-]/g, "_")
/** The region's default credential file (the head creates it). */
export const defaultCredentialPath = (region: string): string => join(authDirectory(), `${fileStem(region)}.users`)
/** The region's default secret file: the local user's `NAME:SECRET`, which the local publisher reads. */
export const defaultSecretPath = (region: string): string => join(authDirectory(), `${fileStem(region)}.secret`)

/**
 * The local user's credentials for `region` from its default secret file (what a client on the
 * head's host uses when given none); undefined when there is no such file or no private
 * directory for one. A file that is there but unusable throws its `CredentialError`.
 */
export const localCredentials = (region: string): Credentials | undefined => {
  let path: string
  try {
    path = defaultSecretPath(region)
  } catch {
    return undefined
  }
  return statSync(path, { throwIfNoEntry: false }) === undefined ? undefined : { ...readSecretFile(path), implicit: true }
}

/** Where a client library finds the local user's secret file when given no credentials. */
export interface LocalRegion {
  /** The region whose default secret file (the head writes it) to use when `credentials` is not given. Default "cxlog". */
  readonly region?: string
}

/** `options` with the local user's credentials for its region when it names none (and the head's secret file is there). */
export const withLocalCredentials = <O extends LocalRegion & { readonly credentials?: Credentials | undefined }>(options: O): O => {
  if (options.credentials !== undefined) return options
  const credentials = localCredentials(options.region ?? "cxlog")
  return credentials === undefined ? options : { ...options, credentials }
}

/** The local OS user's name: the default user of a region's credential file. */
export const localUserName = (): string => {
  try {
    return userInfo().username.replace(/[^A-Za-z0-9._-]/g, "_") || "local"
  } catch {
    return "local"
  }
}

/** Writes `text` to `path` with mode 0600 through a temporary file and a rename, so readers never see half of it. */
export const writePrivateFile = (path: string, text: string): void => {
  const temporary = join(dirname(path), `.${process.pid}.${randomBytes(4).toString("hex")}.tmp`)
  const fd = openSync(temporary, "wx", 0o600)
  try {
    writeSync(fd, text)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(temporary, path)
}

const isStrings = (v: unknown): v is Array<string> => Array.isArray(v) && v.every((s) => typeof s === "string")

export const readCredentialFile = (path: string): CredentialFile => {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"))
  } catch (error) {
    throw new CredentialError({ path, reason: `unreadable: ${(error as Error).message}` })
  }
  const users = (parsed as { users?: unknown }).users
  if ((parsed as { version?: unknown }).version !== 1 || !Array.isArray(users)) throw new CredentialError({ path, reason: "not a cxlog credential file (version 1)" })
  const sessionKey = (parsed as { sessionKey?: unknown }).sessionKey
  if (sessionKey !== undefined && (typeof sessionKey !== "string" || unb64(sessionKey).length < 16)) throw new CredentialError({ path, reason: "a malformed session key" })
  const region = (parsed as { region?: Partial<Record<keyof RegionBinding, unknown>> }).region
  if (
    region !== undefined &&
    (typeof region !== "object" || region === null || typeof region.name !== "string" ||
      !(["createdAtMs", "pid", "start"] as const).every((k) => typeof region[k] === "number" && Number.isFinite(region[k])))
  ) throw new CredentialError({ path, reason: "a malformed region binding" })
  for (const u of users as Array<Partial<UserRecord>>) {
    if (
      typeof u.name !== "string" || typeof u.salt !== "string" || typeof u.storedKey !== "string" || typeof u.serverKey !== "string" ||
      typeof u.iterations !== "number" || !isStrings(u.publish) || !isStrings(u.read) || (u.consume !== undefined && !isStrings(u.consume))
    ) throw new CredentialError({ path, reason: `a malformed user record${typeof u.name === "string" ? ` (${u.name})` : ""}` })
  }
  return parsed as CredentialFile
}

export const writeCredentialFile = (path: string, file: CredentialFile): void => writePrivateFile(path, `${JSON.stringify(file, null, 2)}\n`)

/** How long a change to a credential file waits for another one's lock before it gives up. */
const LOCK_WAIT_MS = 10_000
/** A lock file of an older cxlog (its pid alone, written after the file was made) older than this is a crashed writer's. */
const LEGACY_LOCK_STALE_MS = 30_000
const pause = new Int32Array(new SharedArrayBuffer(4))

/** Whether the process a lock file names is gone: no such pid, a zombie, or another process under its pid (a start time that differs). */
const holderGone = (pid: number, start: string): boolean => {
  try {
    process.kill(pid, 0)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH"
  }
  const now = procStat(pid)
  return now !== undefined && (now.state === "Z" || (start !== "-" && `${now.startTicks}` !== start))
}

/**
 * A lock file (or a take-over marker): `identity` names this one file for good (its nonce; an
 * older cxlog's file, which has none, by its inode), `gone` says its holder is.
 */
interface LockFile {
  readonly identity: string
  readonly pid: number
  readonly gone: boolean
  /** Why the file at the lock path could not be read (it then counts as a live holder's, pid 0). */
  readonly unreadable?: string
}

/** The lock file at `path`, or undefined if there is none. One we cannot read counts as live. */
const readLock = (path: string): LockFile | undefined => {
  let text: string
  let stat: { readonly ino: number; readonly mtimeMs: number }
  try {
    const fd = openSync(path, "r")
    try {
      stat = fstatSync(fd)
      text = readFileSync(fd, "utf8")
    } finally {
      closeSync(fd)
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined
    return { identity: "", pid: 0, gone: false, unreadable: (error as Error).message }
  }
  const [pidText, start, nonce] = text.trim().split(" ")
  const pid = Number(pidText)
  const valid = Number.isSafeInteger(pid) && pid > 0
  if (valid && start !== undefined && nonce !== undefined && /^[0-9a-f]{16}$/.test(nonce)) return { identity: nonce, pid, gone: holderGone(pid, start) }
  // An older cxlog's: empty while its writer had not written its pid yet (or never will).
  return { identity: `ino${stat.ino}`, pid: valid ? pid : 0, gone: Date.now() - stat.mtimeMs > LEGACY_LOCK_STALE_MS || (valid && holderGone(pid, "-")) }
}

/**
 * Makes `target` holding `text`, whole or not at all: written to a temporary file of its own,
 * then hard-linked into place, which fails (false) if `target` exists. A writer killed at any
 * point leaves no `target` or one that names it.
 */
const linkNew = (target: string, text: string): boolean => {
  const temporary = `${target}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`
  writeFileSync(temporary, text, { mode: 0o600, flag: "wx" })
  try {
    linkSync(temporary, target)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false
    throw error
  } finally {
    unlinkSync(temporary)
  }
}

/**
 * Removes the file at `path` if it still is `identity`, whose holder is gone. Whoever removes a
 * dead holder's file first makes the marker `LOCK.IDENTITY.takeover` (itself a lock file naming
 * its maker), so of all the processes that found the same dead file, one removes it, and only
 * it: a file once removed never comes back under its identity, so a late one finds another
 * identity there (a live successor's lock) and leaves it. Nothing else removes a file whose
 * holder lives (a holder stopped for however long keeps its lock). A marker whose maker died
 * in turn is removed the same way.
 */
const removeGone = (lockPath: string, path: string, identity: string, mine: string): void => {
  const marker = `${lockPath}.${identity}.takeover`
  if (!linkNew(marker, mine)) {
    const taker = readLock(marker)
    if (taker?.gone === true) removeGone(lockPath, marker, taker.identity, mine)
    return
  }
  try {
    // Checked again under the marker: an older cxlog's identity (an inode) may name a new file.
    const now = readLock(path)
    if (now?.identity === identity && now.gone) unlinkSync(path)
  } finally {
    unlinkSync(marker)
  }
}

/** Removes what lock makers killed meanwhile left beside the lock: their temporary files, and take-over markers (`removeGone`). */
const sweepLeftovers = (lockPath: string, mine: string): void => {
  const prefix = `${basename(lockPath)}.`
  for (const name of readdirSync(dirname(lockPath))) {
    if (!name.startsWith(prefix)) continue
    const leftover = join(dirname(lockPath), name)
    const temporary = /\.(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name)
    if (temporary !== null) {
      if (holderGone(Number(temporary[1]), "-")) rmSync(leftover, { force: true })
    } else if (name.endsWith(".takeover")) {
      const marker = readLock(leftover)
      if (marker?.gone === true) removeGone(lockPath, leftover, marker.identity, mine)
    }
  }
}

/**
 * Runs `change` (a read, modify and rename of the credential file) holding `PATH.lock`: two `cxlog
 * user add` at once would otherwise each write the file it read, and one user would vanish. The
 * lock file is made whole, naming its holder (pid, start time, a nonce), so a holder that died
 * is seen at once and its lock taken over (`removeGone`); a live holder's lock never is.
 */
const withFileLock = <A>(path: string, change: () => A): A => {
  const lockPath = `${path}.lock`
  const nonce = randomBytes(8).toString("hex")
  const mine = `${process.pid} ${procStat(process.pid)?.startTicks ?? "-"} ${nonce}\n`
  const deadline = Date.now() + LOCK_WAIT_MS
  try {
    while (!linkNew(lockPath, mine)) {
      const holder = readLock(lockPath) // undefined: released meanwhile (or a dangling link there)
      if (holder?.gone === true) removeGone(lockPath, lockPath, holder.identity, mine)
      if (Date.now() > deadline) {
        throw new CredentialError({
          path,
          reason: holder === undefined
            ? `its lock ${lockPath} could not be made within ${LOCK_WAIT_MS} ms, though no lock file could be read there`
            : holder.unreadable !== undefined
            ? `its lock ${lockPath} could not be read for over ${LOCK_WAIT_MS} ms: ${holder.unreadable}`
            : holder.gone
            ? `another change has been taking over its lock ${lockPath} (of process ${holder.pid}, which is gone) for over ${LOCK_WAIT_MS} ms (remove ${lockPath}.*.takeover if no cxlog user command runs)`
            : `process ${holder.pid} holds its lock ${lockPath} for over ${LOCK_WAIT_MS} ms (remove the file if no cxlog user command runs)`
        })
      }
      Atomics.wait(pause, 0, 0, 5 + Math.random() * 10)
    }
  } catch (error) {
    if (error instanceof CredentialError) throw error
    throw new CredentialError({ path, reason: `cannot lock it (${lockPath}): ${(error as Error).message}` })
  }
  try {
    try {
      sweepLeftovers(lockPath, mine)
    } catch {
      // Leftovers cost a directory entry each, nothing more: the change goes ahead.
    }
    return change()
  } finally {
    // Ours still: no one takes over the lock of a live holder.
    if (readLock(lockPath)?.identity === nonce) unlinkSync(lockPath)
  }
}

/**
 * Adds (or replaces) a user. A new file gets a session key (and `region`, if given); a file
 * written before keys existed keeps none: giving it one under a running cluster would make
 * every broker refuse the token-less attaches of the sessions registered before (docs/security.md).
 */
export const upsertUser = (path: string, record: UserRecord, region?: RegionBinding): void =>
  withFileLock(path, () => {
    const existing: CredentialFile = statSync(path, { throwIfNoEntry: false }) === undefined
      ? { version: 1, users: [], sessionKey: b64(randomBytes(32)), ...(region === undefined ? {} : { region }) }
      : readCredentialFile(path)
    writeCredentialFile(path, { ...existing, version: 1, users: [...existing.users.filter((u) => u.name !== record.name), record] })
  })

/** Binds the file to `region` (its users and keys unchanged); false when there is no file. */
export const bindCredentialFile = (path: string, region: RegionBinding): boolean =>
  withFileLock(path, () => {
    if (statSync(path, { throwIfNoEntry: false }) === undefined) return false
    writeCredentialFile(path, { ...readCredentialFile(path), region })
    return true
  })

/** Removes a user; false when the file did not hold it. */
export const removeUser = (path: string, name: string): boolean =>
  withFileLock(path, () => {
    const existing = readCredentialFile(path)
    if (!existing.users.some((u) => u.name === name)) return false
    writeCredentialFile(path, { ...existing, users: existing.users.filter((u) => u.name !== name) })
    return true
  })

/** A secret file's `NAME:SECRET` (refused when others may read it). */
export const readSecretFile = (path: string): Credentials => {
  const stat = statSync(path, { throwIfNoEntry: false })
  if (stat === undefined) throw new CredentialError({ path, reason: "no such secret file" })
  if ((stat.mode & 0o077) !== 0) throw new CredentialError({ path, reason: `mode ${(stat.mode & 0o777).toString(8)} lets others read it: chmod 600 it` })
  const text = readFileSync(path, "utf8").trim()
  const colon = text.indexOf(":")
  if (colon <= 0 || colon === text.length - 1) throw new CredentialError({ path, reason: "not NAME:SECRET" })
  return { user: text.slice(0, colon), secret: text.slice(colon + 1) }
}

export const writeSecretFile = (path: string, credentials: Credentials): void => writePrivateFile(path, `${credentials.user}:${credentials.secret}\n`)

/**
 * The head's part: the region's credential file with the local user (every right), bound to
 * `region` if given, and that user's secret file, unless a credential file is already there
 * (kept: users added to it stay).
 */
export const ensureRegionCredentials = (credentialPath: string, secretPath: string, region?: RegionBinding): { created: boolean } => {
  if (statSync(credentialPath, { throwIfNoEntry: false }) !== undefined) return { created: false }
  const credentials = { user: localUserName(), secret: newSecret() }
  writeSecretFile(secretPath, credentials)
  upsertUser(credentialPath, userRecord(credentials.user, credentials.secret, { publish: ["*"], read: ["*"] }), region)
  return { created: true }
}

/** Removes the region's default files (the head that created them, when it removes its region). */
export const removeRegionCredentials = (credentialPath: string, secretPath: string): void => {
  for (const path of [credentialPath, secretPath]) {
    try {
      unlinkSync(path)
    } catch {
      // Already gone.
    }
  }
}

/** Removes a region's default files (`cxlog regions --remove`, a run's end), if this user's directory is usable. */
export const removeDefaultCredentials = (region: string): void => {
  try {
    removeRegionCredentials(defaultCredentialPath(region), defaultSecretPath(region))
  } catch {
    // No usable private directory: nothing of ours is there.
  }
}
