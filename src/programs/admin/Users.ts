/**
 * The command line's side of security (docs/security.md): `cxlog user add|remove|list` over a
 * credential file; what the head, a broker and a publisher make of their security flags; and
 * the throwaway CA `cxlog bench --tls` runs with.
 */
import { Console, Data, Effect, Either } from "effect"
import { execFileSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createSecureContext } from "node:tls"
import {
  changeUser,
  CredentialError,
  type Credentials,
  defaultCredentialPath,
  defaultSecretPath,
  ensureRegionCredentials,
  exposedModeProblem,
  localCredentials,
  newSecret,
  readCredentialFile,
  readSecretFile,
  removeRegionCredentials,
  removeUser,
  stageSecretFile,
  type UserRecord,
  userRecord
} from "../../layers/net/Auth.js"
import { caProblem } from "../../layers/net/CertificateAuthority.js"
import type { BrokerOptions } from "../../services/net/Broker.js"
import type { PublisherOptions } from "../../services/net/Publisher.js"
import { failUsage } from "../cli/CliFailure.js"
import { table } from "../report/Table.js"
import { credentialsBound, pendingBinding, retireStaleCredentials } from "./RegionCredentials.js"
import { regionCreatedAtMs } from "./Regions.js"

const attempt = <A>(f: () => A) =>
  Effect.try({
    try: f,
    catch: (e) => (e instanceof CredentialError ? e : new CredentialError({ path: "", reason: (e as Error).message }))
  })

/**
 * The head's credential file: created with the local user (every right) and its secret file
 * unless it exists. At the region's default place they are bound to the region the head makes
 * or attaches (RegionCredentials.ts): files there of a region that no longer exists are removed
 * first, so a region made anew never takes a dead one's secret. Files it created at the default
 * place go when the head ends, unless the region is kept and the head bound them to it: a head
 * that failed to start (an `--attach` to a region that is not there) leaves none it made. An
 * explicit `--credentials` file is the operator's and stays.
 */
export const headCredentials = (region: string, credentials: string | undefined, keep: boolean) =>
  Effect.acquireRelease(
    attempt(() => {
      retireStaleCredentials(region, regionCreatedAtMs(region))
      const path = credentials ?? defaultCredentialPath(region)
      const secret = defaultSecretPath(region)
      return {
        path,
        secret,
        created:
          ensureRegionCredentials(path, secret, credentials === undefined ? pendingBinding(region) : undefined).created
      }
    }),
    ({ created, path, secret }) =>
      Effect.sync(() =>
        created && credentials === undefined && (!keep || !credentialsBound(region)) &&
        removeRegionCredentials(path, secret)
      )
  )

export interface BrokerSecurityFlags {
  readonly region: string
  readonly credentials: string | undefined
  readonly insecure: boolean
  readonly tlsCert: string | undefined
  readonly tlsKey: string | undefined
  readonly tlsClientCa: string | undefined
  readonly connectionMessagesPerS: number
  readonly connectionBytesPerS: number
}

/** A broker's security options: authentication against the region's credential file unless `--insecure`. */
export const brokerSecurity = (o: BrokerSecurityFlags) =>
  Effect.gen(function*() {
    if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) {
      return yield* failUsage("cxlog broker: --tls-cert and --tls-key go together")
    }
    if (o.tlsClientCa !== undefined && o.tlsCert === undefined) {
      return yield* failUsage("cxlog broker: --tls-client-ca needs --tls-cert and --tls-key")
    }
    const options: Partial<Pick<BrokerOptions, "credentials" | "tls" | "insecure" | "limits">> = {
      ...(o.insecure
        ? { insecure: true }
        : { credentials: o.credentials ?? (yield* attempt(() => defaultCredentialPath(o.region))) }),
      ...(o.tlsCert === undefined || o.tlsKey === undefined
        ? {}
        : {
          tls: { cert: o.tlsCert, key: o.tlsKey, ...(o.tlsClientCa === undefined ? {} : { clientCa: o.tlsClientCa }) }
        }),
      limits: { messagesPerSecond: o.connectionMessagesPerS, bytesPerSecond: o.connectionBytesPerS }
    }
    return options
  })

export interface ClientSecurityFlags {
  readonly region: string
  readonly secretFile: string | undefined
  readonly tlsCa: string | undefined
  readonly tlsClientCert: string | undefined
  readonly tlsClientKey: string | undefined
  /** `--insecure`: also take brokers that authenticate nobody (without it, a client holding credentials refuses them). */
  readonly insecure?: boolean
}

const readPem = (flag: string, path: string) =>
  Effect.try({
    try: () => readFileSync(path),
    catch: (e) => new CredentialError({ path, reason: `${flag}: ${(e as Error).message}` })
  })

/**
 * A client's credentials (the secret file given, else the region's default one when this
 * user can read it: the head's local user), TLS files, and whether it takes brokers that
 * authenticate nobody.
 */
export const clientSecurity = (o: ClientSecurityFlags) =>
  Effect.gen(function*() {
    if ((o.tlsClientCert === undefined) !== (o.tlsClientKey === undefined)) {
      return yield* failUsage("--tls-client-cert and --tls-client-key go together")
    }
    let credentials: Credentials | undefined
    if (o.secretFile !== undefined) {
      credentials = yield* attempt(() => readSecretFile(o.secretFile!))
    } else {
      credentials = yield* attempt(() => localCredentials(o.region))
    }
    const tls = o.tlsCa === undefined && o.tlsClientCert === undefined ? undefined : {
      ...(o.tlsCa === undefined ? {} : { ca: yield* readPem("--tls-ca", o.tlsCa) }),
      ...(o.tlsClientCert === undefined ? {} : { cert: yield* readPem("--tls-client-cert", o.tlsClientCert) }),
      ...(o.tlsClientKey === undefined ? {} : { key: yield* readPem("--tls-client-key", o.tlsClientKey) })
    }
    // Checked once here (a key that is not the certificate's, a PEM that does not parse, a CA that
    // holds no certificate): at the connection it would be OpenSSL's words alone, naming no flag or file.
    const caUnusable = tls?.ca === undefined ? undefined : caProblem(tls.ca)
    if (caUnusable !== undefined) {
      return yield* new CredentialError({ path: o.tlsCa!, reason: `--tls-ca ${caUnusable}` })
    }
    if (tls !== undefined) {
      yield* Effect.try({
        try: () => createSecureContext(tls),
        catch: (e) =>
          new CredentialError({
            path: [o.tlsCa, o.tlsClientCert, o.tlsClientKey].filter((p) => p !== undefined).join(", "),
            reason: `--tls-ca, --tls-client-cert, --tls-client-key: ${(e as Error).message}`
          })
      })
    }
    const options: Pick<PublisherOptions, "credentials" | "tls" | "insecure"> = {
      ...(credentials === undefined ? {} : { credentials }),
      ...(o.insecure === true ? { insecure: true } : {}),
      ...(tls === undefined ? {} : { tls })
    }
    return options
  })

const patterns = (text: string) => text.split(",").map((p) => p.trim()).filter((p) => p !== "")

export interface UserCommand {
  readonly action: string | undefined
  readonly name: string | undefined
  readonly region: string
  readonly credentials: string | undefined
  /** add: the rights and limits given (undefined: not given, so a user that exists keeps its own, a new one the default). */
  readonly publish: string | undefined
  readonly read: string | undefined
  readonly consume: string | undefined
  readonly admin: string | undefined
  readonly secretFile: string | undefined
  readonly messagesPerS: number | undefined
  readonly bytesPerS: number | undefined
  readonly connections: number | undefined
  /** add, for a user that exists: replace its secret too (else it is kept, and its clients' files with it). */
  readonly newSecret: boolean
  readonly json: boolean
}

/**
 * The credential file `remove` and `list` work on, refused when it is not there with who makes
 * it (readFileSync's ENOENT names neither the region nor the remedy).
 */
const existingCredentialFile = (path: string, o: UserCommand) =>
  existsSync(path) ? Effect.void : Effect.fail(
    new CredentialError({
      path,
      reason: o.credentials === undefined
        ? `no such file: region ${o.region} has no credential file (its head makes one with the region, cxlog user add makes one; --region or --credentials names another)`
        : "no such file (cxlog user add makes one)"
    })
  )

/**
 * `remove NAME` of a user the credential file does not have (a mistyped name, one removed
 * already): a failed operation a script sees (exit 1), as a topic or consumer not found is.
 */
export class UserNotFound extends Data.TaggedError("UserNotFound")<{
  readonly path: string
  readonly name: string
  /** The command that lists the file's users. */
  readonly list: string
}> {
  override get message() {
    return `${this.path} has no user ${this.name} (${this.list} lists its users)`
  }
}

/**
 * The rights and limits `o` gives a user, over those it has (`existing`; for a new user, the
 * defaults: every topic to publish to and read, every consumer, no admin right, no limit). Only what
 * is given changes: `--messages-per-s` alone must not widen a restricted user to the defaults.
 */
const rightsAndLimits = (o: UserCommand, existing: UserRecord | undefined) => {
  const pick = (given: string | undefined, has: ReadonlyArray<string> | undefined, otherwise: ReadonlyArray<string>) =>
    given !== undefined ? patterns(given) : existing === undefined ? otherwise : has ?? otherwise
  const limit = (given: number | undefined, has: number | undefined) => given ?? has ?? 0
  return {
    publish: pick(o.publish, existing?.publish, ["*"]),
    read: pick(o.read, existing?.read, ["*"]),
    // A record without them (an older build's) may join any consumer and administers nothing.
    consume: pick(o.consume, existing?.consume, ["*"]),
    admin: pick(o.admin, existing?.admin, []),
    limits: {
      messagesPerSecond: limit(o.messagesPerS, existing?.limits?.messagesPerSecond),
      bytesPerSecond: limit(o.bytesPerS, existing?.limits?.bytesPerSecond),
      connections: limit(o.connections, existing?.limits?.connections)
    }
  }
}

/**
 * `add NAME`: a user that exists gets the rights and limits given, keeps the others, and keeps its
 * secret, so its clients' secret files go on working (`--new-secret` replaces it); a new secret
 * goes to `--secret-file`, else to stdout once. Whether the user exists is read under the file's
 * lock, with the change: read before it, a secret another `user add --new-secret` gave meanwhile
 * would be put back to the old one.
 */
const addUser = (path: string, o: UserCommand & { readonly name: string }) =>
  Effect.gen(function*() {
    const credentials = { user: o.name, secret: newSecret() }
    // The secret file is written before the user is added and put in place after: one that
    // cannot be written adds nobody, where it would leave a user whose secret nobody holds.
    const staged = o.secretFile === undefined
      ? undefined
      : yield* Effect.either(attempt(() => stageSecretFile(o.secretFile!, credentials)))
    const file = staged !== undefined && Either.isRight(staged) ? staged.right : undefined
    const { kept } = yield* attempt(() =>
      changeUser(path, o.name, (existing) => {
        const { limits, ...rights } = rightsAndLimits(o, existing)
        if (existing !== undefined && !o.newSecret) return { record: { ...existing, ...rights, limits }, kept: true }
        if (staged !== undefined && Either.isLeft(staged)) throw staged.left
        return { record: userRecord(o.name, credentials.secret, rights, limits), kept: false }
      })
    ).pipe(Effect.tapError(() => Effect.sync(() => file?.discard())))
    if (kept) {
      file?.discard()
      return yield* Console.error(
        `user ${o.name} updated in ${path}: the rights and limits given are set, the others and its secret are kept${
          o.secretFile === undefined ? "" : ` (${o.secretFile} not written)`
        }; --new-secret replaces it`
      )
    }
    if (file !== undefined) {
      yield* attempt(file.commit)
      return yield* Console.error(
        `user ${o.name} added to ${path}; its secret is in ${o.secretFile} (0600): give that file to its client (--secret-file)`
      )
    }
    // The secret exists only here: printed once, for the operator to put in a 0600 file.
    yield* Console.log(`${credentials.user}:${credentials.secret}`)
    return yield* Console.error(
      `user ${o.name} added to ${path}; the line above is its secret file's content (keep it 0600; --secret-file)`
    )
  })

/** `cxlog user add NAME | remove NAME | list`. */
export const users = (o: UserCommand) =>
  Effect.gen(function*() {
    const path = o.credentials ?? (yield* attempt(() => defaultCredentialPath(o.region)))
    switch (o.action) {
      case "add": {
        if (o.name === undefined || !/^[A-Za-z0-9._@-]{1,100}$/.test(o.name)) {
          return yield* failUsage("cxlog user add: name the user: 1 to 100 of A-Z a-z 0-9 . _ @ -")
        }
        return yield* addUser(path, { ...o, name: o.name })
      }
      case "remove": {
        if (o.name === undefined) return yield* failUsage("cxlog user remove: name the user")
        yield* existingCredentialFile(path, o)
        const removed = yield* attempt(() => removeUser(path, o.name!))
        if (!removed) {
          const list = o.credentials === undefined
            ? `cxlog user list --region ${o.region}`
            : `cxlog user list --credentials ${path}`
          return yield* new UserNotFound({ path, name: o.name, list })
        }
        return yield* Console.log(`user ${o.name} removed from ${path}: its next connection is refused`)
      }
      case "list":
      case undefined: {
        yield* existingCredentialFile(path, o)
        const file = yield* attempt(() => readCredentialFile(path))
        // The list reads a file brokers refuse: said, or it reads as fine while every handshake fails.
        const refused = exposedModeProblem(statSync(path).mode)
        if (refused !== undefined) {
          yield* Console.error(`cxlog user: brokers authenticate nobody with ${path} as it is: ${refused}`)
        }
        const rows = file.users.map((u) => ({
          user: u.name,
          publish: u.publish.join(",") || "-",
          read: u.read.join(",") || "-",
          consume: u.consume === undefined ? "*" : u.consume.join(",") || "-",
          admin: u.admin?.join(",") || "-",
          limits: [
            u.limits?.messagesPerSecond ? `${u.limits.messagesPerSecond} msg/s` : "",
            u.limits?.bytesPerSecond ? `${u.limits.bytesPerSecond} B/s` : "",
            u.limits?.connections ? `${u.limits.connections} conn` : ""
          ].filter((s) => s !== "").join(", ") || "-"
        }))
        if (o.json) return yield* Console.log(JSON.stringify({ path, users: rows }))
        yield* Console.log(`${path}:`)
        return yield* Console.log(
          table(
            ["user", "publish", "read", "consume", "admin", "limits"],
            rows.map((r) => [r.user, r.publish, r.read, r.consume, r.admin, r.limits])
          )
        )
      }
      default:
        return yield* failUsage(`cxlog user: ${o.action} is not add, remove or list`)
    }
  })

/**
 * A throwaway CA and a broker certificate for 127.0.0.1 (openssl), and the environment that
 * gives a run's brokers TLS and its publisher the CA; removed with the scope.
 */
export const benchTls = Effect.acquireRelease(
  Effect.try({
    try: () => {
      const dir = mkdtempSync(join(tmpdir(), "cxlog-bench-tls-"))
      const ssl = (args: Array<string>) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" })
      ssl([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=cxlog bench CA"
      ])
      ssl([
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "broker.key",
        "-out",
        "broker.csr",
        "-subj",
        "/CN=127.0.0.1"
      ])
      writeFileSync(join(dir, "broker.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
      ssl([
        "x509",
        "-req",
        "-in",
        "broker.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "broker.pem",
        "-days",
        "1",
        "-extfile",
        "broker.ext"
      ])
      return {
        dir,
        env: {
          CXLOG_TLS_CERT: join(dir, "broker.pem"),
          CXLOG_TLS_KEY: join(dir, "broker.key"),
          CXLOG_TLS_CA: join(dir, "ca.pem")
        }
      }
    },
    catch: (e) =>
      new CredentialError({
        path: "openssl",
        reason: `bench --tls makes its certificates with openssl: ${(e as Error).message.split("\n")[0]}`
      })
  }),
  ({ dir }) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)
