/**
 * Security (docs/security.md): every session authenticates against the broker's credential file
 * and may publish only where its rights say; TLS with a CA the test makes (publishers and remote
 * subscribers); a broker beyond
 * loopback without TLS and authentication does not start; rate and connection limits.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Either, Schedule, type Scope, Stream } from "effect"
import { execFileSync } from "node:child_process"
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { type AddressInfo, createServer, type Server } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  authorize,
  AuthServer,
  clientProof,
  CredentialError,
  type Credentials,
  ensureRegionCredentials,
  newNonce,
  readCredentialFile,
  readSecretFile,
  removeUser,
  upsertUser,
  type UserLimits,
  userRecord,
  writeCredentialFile
} from "../../src/layers/net/Auth.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { type ClientConnection, type ConnectionClosed, openConnection } from "../../src/layers/net/ClientConnection.js"
import {
  authFrame,
  AuthProof,
  Challenge,
  challengeFrame,
  decodeControl,
  ErrorBody,
  Hello,
  helloFrame,
  PROTOCOL_VERSION,
  SessionOpen,
  SessionOpened,
  sessionOpenFrame,
  Welcome,
  welcomeFrame
} from "../../src/layers/net/Control.js"
import { encodeFrame, FrameType } from "../../src/layers/net/Frame.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import { Subscribed, subscribedFrame } from "../../src/layers/net/SubscribeFrames.js"
import { makeRemote } from "../../src/layers/net/SubscriberRemote.js"
import type { BrokerOptions } from "../../src/services/net/Broker.js"
import type { InvalidPublisherOptions, PublisherOptions, PublisherShape } from "../../src/services/net/Publisher.js"
import type { Subscription } from "../../src/services/net/Subscriber.js"
import { audit, clean, publishTestMessages, testMessage } from "../fixtures/net-audit.js"
import { batchFrame, errorCode, rawConnect } from "../fixtures/net-raw-client.js"
import { spawnFixture, tempDir } from "../helpers/Processes.js"

const ALICE: Credentials = { user: "alice", secret: "alice-secret-1" }
const BOB: Credentials = { user: "bob", secret: "bob-secret-2" }

/** A private directory for the test's files, removed when the test ends. */
const privateDir = tempDir("cxlog-security-")

/** A credential file: alice may publish to t, bob only to other; `extra` users with limits. */
const credentialFile = (dir: string, extra: ReadonlyArray<{ credentials: Credentials; limits: UserLimits }> = []) => {
  const path = join(dir, "users")
  upsertUser(path, userRecord(ALICE.user, ALICE.secret, { publish: ["t"], read: ["*"] }, undefined, 64))
  upsertUser(path, userRecord(BOB.user, BOB.secret, { publish: ["oth*"], read: [] }, undefined, 64))
  for (const { credentials, limits } of extra) {
    upsertUser(path, userRecord(credentials.user, credentials.secret, { publish: ["*"], read: ["*"] }, limits, 64))
  }
  return path
}

const secureBroker = (options: BrokerOptions) =>
  Effect.gen(function*() {
    const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }, { name: "other" }] })
    const server = yield* BrokerLayers.make(options).pipe(Effect.provide(log.forBroker(0)))
    const publisher = (options: Partial<PublisherOptions>) =>
      PublisherLayers.make({
        brokers: [{ host: "127.0.0.1", port: server.port }],
        topic: "t",
        connectTimeoutMs: 2_000,
        ackTimeoutMs: 10_000,
        ...options
      })
    return { log, server, publisher }
  })

/** The offsets of the first `count` messages a subscription reads. */
const offsetsRead = (
  subscription: Subscription,
  count: number
) =>
  Stream.runCollect(
    subscription.batches.pipe(Stream.mapConcat((b) => Array.from(b, (m) => m.offset)), Stream.take(count))
  )

const MALLORY: Credentials = { user: "mallory", secret: "mallory-secret-3" }

/** A secure broker whose credential file adds mallory, who may publish to t as alice may. */
const withMallory = Effect.gen(function*() {
  const path = credentialFile(yield* privateDir)
  upsertUser(path, userRecord(MALLORY.user, MALLORY.secret, { publish: ["t"], read: [] }, undefined, 64))
  return { path, ...(yield* secureBroker({ credentials: path })) }
})

/** How a publisher ends: the error of its first publish and flush. */
const refusal = (publisher: Effect.Effect<PublisherShape, InvalidPublisherOptions, Scope.Scope>, clientId: number) =>
  Effect.flip(Effect.gen(function*() {
    const p = yield* publisher
    yield* p.publish(testMessage(clientId, 0, 64))
    yield* p.flush(10_000)
  }))

/**
 * A raw client's full handshake as `credentials` and its session of `topic`: the HELLO and AUTH
 * bytes it sent, and the broker's answer — the SESSION_OPENED (or ENDED) of the session it then
 * opened under session id `clientId`, or the ERROR that ended the handshake.
 */
const rawHandshake = (
  port: number,
  credentials: Credentials,
  clientId: number,
  topic = "t",
  sessionEpoch?: number,
  sessionToken?: string
) =>
  Effect.gen(function*() {
    const client = yield* rawConnect(port)
    const nonce = newNonce()
    const hello = helloFrame(
      new Hello({ protocol: PROTOCOL_VERSION, clientId, ackLevel: 1, user: credentials.user, nonce })
    )
    client.write(hello)
    const challengeFrame = yield* client.nextFrame()
    expect(challengeFrame.type).toBe(FrameType.CHALLENGE)
    const challenge = Either.getOrThrow(decodeControl(Challenge, challengeFrame.payload, "bad-handshake"))
    const auth = authFrame(clientId, new AuthProof({ proof: clientProof(credentials, nonce, challenge).proof }))
    client.write(auth)
    const welcome = yield* client.nextFrame()
    if (welcome.type !== FrameType.WELCOME) return { client, hello, auth, answer: welcome }
    client.write(
      sessionOpenFrame(
        clientId,
        sessionEpoch ?? 0,
        new SessionOpen({ topic, ...(sessionToken === undefined ? {} : { sessionToken }) })
      )
    )
    return { client, hello, auth, answer: yield* client.nextFrame() }
  })

/** A CA, a broker certificate for 127.0.0.1 and a client certificate, made with openssl in `dir`. */
const makeCertificates = (dir: string) => {
  const ssl = (args: Array<string>) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" })
  ssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=cxlog test CA"
  ])
  for (
    const [name, san] of [["broker", "subjectAltName=IP:127.0.0.1,DNS:localhost"], [
      "client",
      "subjectAltName=DNS:alice"
    ]] as const
  ) {
    ssl([
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${name}`
    ])
    writeFileSync(join(dir, `${name}.ext`), `${san}\n`)
    ssl([
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`
    ])
  }
  return {
    ca: join(dir, "ca.pem"),
    brokerCert: join(dir, "broker.pem"),
    brokerKey: join(dir, "broker.key"),
    clientCert: readFileSync(join(dir, "client.pem")),
    clientKey: readFileSync(join(dir, "client.key"))
  }
}

describe("Security", () => {
  it.scopedLive("an authorised publisher's audited run passes while no credentials, a wrong secret, a replayed handshake and rights on another topic only are each refused", () =>
    Effect.gen(function*() {
      const dir = yield* privateDir
      const { log, publisher, server } = yield* secureBroker({ credentials: credentialFile(dir) })
      const alice = yield* publisher({ clientId: 1, credentials: ALICE, batchBytes: 4096 })
      yield* publishTestMessages(alice, 1, 500, 200)

      expect(yield* refusal(publisher({ clientId: 2 }), 2)).toMatchObject({
        _tag: "BrokerRejected",
        code: "auth-required"
      })
      expect(yield* refusal(publisher({ clientId: 3, credentials: { user: "alice", secret: "wrong" } }), 3))
        .toMatchObject({
          _tag: "BrokerRejected",
          code: "auth-failed"
        })
      // A user the file does not hold is told no more than a wrong secret.
      expect(yield* refusal(publisher({ clientId: 4, credentials: { user: "mallory", secret: "x" } }), 4))
        .toMatchObject({ code: "auth-failed" })
      const forbidden = yield* refusal(publisher({ clientId: 5, credentials: BOB }), 5)
      expect(forbidden).toMatchObject({ _tag: "BrokerRejected", code: "forbidden" })
      expect(forbidden.message).toMatch(/bob may not publish to topic t/)
      // Bob's own topic stays his: the refusal on t took nothing else.
      const bobOwn = yield* publisher({ clientId: 6, credentials: BOB, topic: "other" })
      yield* bobOwn.publish(testMessage(6, 0, 64))
      yield* bobOwn.flush(10_000)

      // A captured handshake replayed byte for byte: the broker's nonce differs, so the proof no longer fits.
      const captured = yield* rawHandshake(server.port, ALICE, 7)
      expect(captured.answer.type).toBe(FrameType.SESSION_OPENED)
      const replay = yield* rawConnect(server.port)
      replay.write(captured.hello)
      expect((yield* replay.nextFrame()).type).toBe(FrameType.CHALLENGE)
      replay.write(captured.auth)
      expect(errorCode(yield* replay.nextFrame())).toBe("auth-failed")
      // Nor do batches get in without a handshake, or with an old protocol.
      const blind = yield* rawConnect(server.port)
      blind.write(batchFrame(8, 1, 0, [testMessage(8, 0, 64)]))
      expect(errorCode(yield* blind.nextFrame())).toBe("unexpected-frame")
      const old = yield* rawConnect(server.port)
      old.write(helloFrame(new Hello({ protocol: 3, clientId: 9, ackLevel: 1 })))
      expect(errorCode(yield* old.nextFrame())).toBe("version-mismatch")

      yield* publishTestMessages(alice, 1, 500, 200, 500)
      yield* alice.flush(10_000)
      expect(audit(log.ordered("t"), new Map([[1, 1000]]))).toEqual({ messages: 1000, ...clean })
      expect(log.ordered("other").length).toBe(1)
      expect(server.stats().rejected).toMatchObject({
        "auth-required": 1,
        "auth-failed": 3,
        forbidden: 1,
        "unexpected-frame": 1,
        "version-mismatch": 1
      })
    }))

  it.scopedLive("a connection's later sessions are held to its user's rights as they are then: narrowed, a session it may no longer open is forbidden; removed, none opens", () =>
    Effect.gen(function*() {
      const dir = yield* privateDir
      const path = credentialFile(dir)
      const { server } = yield* secureBroker({ credentials: path })
      const alice = yield* rawHandshake(server.port, ALICE, 21)
      expect(alice.answer.type).toBe(FrameType.SESSION_OPENED)
      const openOn = (id: number, topic: string) =>
        Effect.suspend(() => {
          alice.client.write(sessionOpenFrame(id, 0, new SessionOpen({ topic })))
          return alice.client.nextFrame()
        })
      // Her rights narrowed to nothing, her secret kept: the open connection opens no new session of t.
      const record = readCredentialFile(path).users.find((u) => u.name === ALICE.user)!
      upsertUser(path, { ...record, publish: [] })
      const narrowed = yield* openOn(22, "t")
      expect(errorCode(narrowed)).toBe("forbidden")
      // Given them back, it does; removed, it opens nothing more, naming why.
      upsertUser(path, record)
      expect((yield* openOn(23, "t")).type).toBe(FrameType.SESSION_OPENED)
      removeUser(path, ALICE.user)
      const removed = yield* openOn(24, "t")
      expect(errorCode(removed)).toBe("forbidden")
      expect(Either.getOrThrow(decodeControl(ErrorBody, removed!.payload, "internal")).message).toContain(
        "user alice was removed, or given another secret, since this connection signed in"
      )
    }))

  it.scopedLive("a pattern subscription finds later topics by its user's rights as they are then: one narrowed since misses the topics it may no longer read", () =>
    Effect.gen(function*() {
      const dir = yield* privateDir
      const path = credentialFile(dir)
      const { log, server } = yield* secureBroker({ credentials: path })
      const subscription = yield* makeRemote({
        brokers: [{ host: "127.0.0.1", port: server.port }],
        credentials: ALICE,
        connectTimeoutMs: 2_000
      }).subscribeTopics(["n.*"])
      // Read on, as a subscriber does: the topics found are announced with its batches.
      yield* Effect.forkScoped(Stream.runDrain(subscription.batches))
      const spec = { order: 5 as const, ackLevel: 1 as const, replicationFactor: 1 }
      yield* log.topics.create({ name: "n.0", ...spec })
      const found = (name: string) =>
        Effect.repeat(Effect.sync(subscription.topics), {
          until: (topics) => topics.includes(name),
          schedule: Schedule.spaced("20 millis")
        }).pipe(Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error(`${name} was not found`) }))
      yield* found("n.0")
      // Narrowed (her secret kept): of the two topics made now, the pass that finds the one she may read leaves the other.
      const record = readCredentialFile(path).users.find((u) => u.name === ALICE.user)!
      upsertUser(path, { ...record, read: ["n.0", "n.2"] })
      yield* log.topics.create({ name: "n.1", ...spec })
      yield* log.topics.create({ name: "n.2", ...spec })
      yield* found("n.2")
      expect(subscription.topics()).not.toContain("n.1")
    }))

  it.scopedLive("a connection holds at most 8 sessions of one topic: one user cannot take a topic's session lines from its other publishers", () =>
    Effect.gen(function*() {
      const { server } = yield* withMallory
      const alice = yield* rawHandshake(server.port, ALICE, 41)
      expect(alice.answer.type).toBe(FrameType.SESSION_OPENED)
      const openOn = (id: number) =>
        Effect.suspend(() => {
          alice.client.write(sessionOpenFrame(id, 0, new SessionOpen({ topic: "t" })))
          return alice.client.nextFrame()
        })
      for (let id = 42; id < 49; id++) expect((yield* openOn(id)).type).toBe(FrameType.SESSION_OPENED)
      const ninth = yield* openOn(49)
      expect(errorCode(ninth)).toBe("too-many-sessions")
      expect(Buffer.from(ninth!.payload).toString()).toContain("at most 8 sessions of one topic (t)")
    }))

  it.scopedLive("a user cannot attach to another user's session on a topic both may publish to: forbidden, and the owner's batches all count", () =>
    Effect.gen(function*() {
      const { log, server } = yield* withMallory
      const alice = yield* rawHandshake(server.port, ALICE, 11)
      expect(alice.answer.type).toBe(FrameType.SESSION_OPENED)
      const epoch = alice.answer.sessionEpoch
      alice.client.write(batchFrame(11, epoch, 0, [testMessage(11, 0, 64)]))
      expect((yield* alice.client.nextFrame()).type).toBe(FrameType.ACK)
      // The session's id and epoch are in every DATA frame: mallory, authenticated as herself, names them.
      const mallory = yield* rawHandshake(server.port, MALLORY, 11, "t", epoch)
      expect(errorCode(mallory.answer)).toBe("forbidden")
      // Alice's own second connection to her session is welcome, and her next batch is appended, not taken for a duplicate.
      const again = yield* rawHandshake(server.port, ALICE, 11, "t", epoch)
      expect(again.answer.type).toBe(FrameType.SESSION_OPENED)
      alice.client.write(batchFrame(11, epoch, 1, [testMessage(11, 1, 64)]))
      expect((yield* alice.client.nextFrame()).type).toBe(FrameType.ACK)
      expect(audit(log.ordered("t"), new Map([[11, 2]]))).toEqual({ messages: 2, ...clean })
    }))

  it.scopedLive("through another broker of the same credential file, a session is attached only with the token its registering SESSION_OPENED gave its user", () =>
    Effect.gen(function*() {
      const { path, log, server } = yield* withMallory
      const other = yield* BrokerLayers.make({ credentials: path }).pipe(Effect.provide(log.forBroker(1)))
      const alice = yield* rawHandshake(server.port, ALICE, 11)
      const epoch = alice.answer.sessionEpoch
      const token = Either.getOrThrow(decodeControl(SessionOpened, alice.answer.payload, "bad-handshake")).sessionToken
      expect(token).toBeDefined()
      // The other broker never saw the session: mallory, without its token or with alice's, is refused.
      expect(errorCode((yield* rawHandshake(other.port, MALLORY, 11, "t", epoch)).answer)).toBe("forbidden")
      expect(errorCode((yield* rawHandshake(other.port, MALLORY, 11, "t", epoch, token)).answer)).toBe("forbidden")
      expect(errorCode((yield* rawHandshake(other.port, ALICE, 11, "t", epoch)).answer)).toBe("forbidden")
      expect((yield* rawHandshake(other.port, ALICE, 11, "t", epoch, token)).answer.type).toBe(
        FrameType.SESSION_OPENED
      )
      // The client keeps its sessions' tokens: its connection attaching through the other broker names it.
      const opened = (port: number, sessionEpoch: number | undefined) =>
        Effect.async<number, ConnectionClosed | Error>((resume) => {
          const connection: ClientConnection = openConnection(
            { host: "127.0.0.1", port },
            new Hello({ protocol: PROTOCOL_VERSION, clientId: 12, ackLevel: 1 }),
            {
              onWelcome: () => connection.openSession(1, "t", sessionEpoch),
              onSessionOpened: (_, epoch) => resume(Effect.succeed(epoch)),
              onSessionEnded: (_, error) => resume(Effect.fail(new Error(`${error.code}: ${error.message}`))),
              onAck: () => {},
              onFenced: () => {},
              onBrokerError: () => {},
              onClosed: (_, error) => resume(Effect.fail(error))
            },
            5_000,
            { credentials: ALICE }
          )
          return Effect.sync(connection.close)
        })
      const registered = yield* opened(server.port, undefined)
      const attached = yield* opened(other.port, registered)
      expect(attached).toBe(registered)
    }))

  it.effect("a credential file gets its session key when it is made, never later: sessions a keyless file let register keep attaching after a user is added", () =>
    Effect.gen(function*() {
      const dir = yield* privateDir
      const fresh = credentialFile(dir)
      expect(readCredentialFile(fresh).sessionKey).toBeDefined()
      // A file written before session keys existed.
      const older = join(dir, "older-users")
      writeCredentialFile(older, {
        version: 1,
        users: [userRecord(ALICE.user, ALICE.secret, { publish: ["t"], read: [] }, undefined, 64)]
      })
      const server = AuthServer.open(older)
      server.challenge(ALICE.user, newNonce())
      const token = server.sessionToken("t", 11, 3, ALICE.user)
      expect(token).toBeUndefined()
      expect(server.sessionTokenMatches("t", 11, 3, ALICE.user, token)).toBe(true)
      upsertUser(older, userRecord(BOB.user, BOB.secret, { publish: ["oth*"], read: [] }, undefined, 64))
      expect(readCredentialFile(older).sessionKey).toBeUndefined()
      server.challenge(ALICE.user, newNonce())
      expect(server.sessionTokenMatches("t", 11, 3, ALICE.user, token)).toBe(true)
    }).pipe(Effect.scoped))

  it.scopedLive("a user joins only the named consumers its consume rights name; a user without the right is refused forbidden", () =>
    Effect.gen(function*() {
      const dir = yield* privateDir
      const path = credentialFile(dir)
      const CAROL: Credentials = { user: "carol", secret: "carol-secret-4" }
      upsertUser(
        path,
        userRecord(CAROL.user, CAROL.secret, { publish: [], read: ["t"], consume: ["carol-*"] }, undefined, 64)
      )
      const { publisher, server } = yield* secureBroker({ credentials: path })
      const alice = yield* publisher({ clientId: 1, credentials: ALICE })
      yield* publishTestMessages(alice, 1, 10, 10)
      yield* alice.flush(10_000)
      const subscriber = (credentials: Credentials) =>
        makeRemote({ brokers: [{ host: "127.0.0.1", port: server.port }], credentials, connectTimeoutMs: 2_000 })
      const refused = yield* Effect.flip(subscriber(CAROL).subscribe("t", { consumer: "billing" }))
      expect(refused).toMatchObject({ code: "forbidden" })
      expect(refused.message).toMatch(/carol may not join consumer billing \(its consume rights: carol-\*\)/)
      const own = yield* subscriber(CAROL).subscribe("t", { consumer: "carol-audit" })
      expect(yield* offsetsRead(own, 10)).toHaveLength(10)
      // A record without consume rights (written by an older build) may join any consumer of a topic it reads.
      const billing = yield* subscriber(ALICE).subscribe("t", { consumer: "billing" })
      expect(yield* offsetsRead(billing, 10)).toHaveLength(10)
    }))

  it.scopedLive("a subscriber reads only the topics its read rights name: a named topic it may not read, alone or among others, is refused forbidden naming it", () =>
    Effect.gen(function*() {
      const dir = yield* privateDir
      const path = credentialFile(dir)
      const DAVE: Credentials = { user: "dave", secret: "dave-secret-5" }
      upsertUser(path, userRecord(DAVE.user, DAVE.secret, { publish: [], read: ["t"] }, undefined, 64))
      const { publisher, server } = yield* secureBroker({ credentials: path })
      const alice = yield* publisher({ clientId: 1, credentials: ALICE })
      yield* publishTestMessages(alice, 1, 10, 10)
      yield* alice.flush(10_000)
      const dave = makeRemote({
        brokers: [{ host: "127.0.0.1", port: server.port }],
        credentials: DAVE,
        connectTimeoutMs: 2_000
      })
      for (
        const refused of [
          yield* Effect.flip(dave.subscribe("other")),
          yield* Effect.flip(dave.subscribeTopics(["t", "other"]))
        ]
      ) {
        expect(refused).toMatchObject({ code: "forbidden" })
        expect(refused.message).toMatch(/dave may not read from topic other \(its read rights: t\)/)
      }
      // The topic it may read, it reads.
      const own = yield* dave.subscribe("t")
      expect(yield* offsetsRead(own, 10)).toHaveLength(10)
    }))

  it.scopedLive("an impostor broker without the credential file: a WELCOME or SUBSCRIBED with no CHALLENGE, or a CHALLENGE asking for absurd rounds, is refused by a client with credentials; one that challenges cannot skip its proof, even with the insecure opt-in", () =>
    Effect.gen(function*() {
      // The impostor answers the client's n-th chunk (its opening frame, then its AUTH) with `answers[n]` and otherwise says nothing.
      const impostor = (...answers: ReadonlyArray<Buffer>) =>
        Effect.acquireRelease(
          Effect.async<Server>((resume) => {
            const server = createServer((socket) => {
              socket.on("error", () => {})
              let chunks = 0
              socket.on("data", () => {
                const answer = answers[chunks++]
                if (answer !== undefined) socket.write(answer)
              })
            })
            server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
          }),
          (server) => Effect.sync(() => server.close())
        ).pipe(Effect.map((server) => [{ host: "127.0.0.1", port: (server.address() as AddressInfo).port }]))
      const welcome = yield* impostor(
        welcomeFrame(new Welcome({ protocol: PROTOCOL_VERSION, brokerId: 0, maxBatchBytes: 1 << 20, maxSessions: 64 }))
      )
      const publisher = (brokers: ReadonlyArray<{ host: string; port: number }>) =>
        PublisherLayers.make({
          brokers,
          topic: "t",
          clientId: 1,
          credentials: ALICE,
          connectTimeoutMs: 2_000,
          ackTimeoutMs: 10_000
        })
      const refused = yield* refusal(publisher(welcome), 1)
      expect(refused).toMatchObject({ _tag: "BrokerRejected", code: "auth-failed" })
      expect(refused.message).toMatch(/without authenticating it/)
      const subscribed = yield* impostor(
        subscribedFrame(new Subscribed({ protocol: PROTOCOL_VERSION, brokerId: 0, start: 0, earliest: 0, end: 0 }))
      )
      const subscription = yield* Effect.flip(
        makeRemote({ brokers: subscribed, credentials: ALICE, connectTimeoutMs: 2_000 }).subscribe("t")
      )
      expect(subscription).toMatchObject({ _tag: "SubscriberConnectionFailed", code: "auth-failed" })
      // Ten million PBKDF2 rounds would hold a client's CPU for seconds: the CHALLENGE is malformed past the cap.
      const costly = yield* impostor(encodeFrame(
        { type: FrameType.CHALLENGE, clientId: 0, sessionEpoch: 0, seq: 0, messageCount: 0 },
        new TextEncoder().encode(JSON.stringify({ salt: "c2FsdA==", iterations: 10_000_000, nonce: newNonce() }))
      ))
      expect((yield* refusal(publisher(costly), 1)).message).toMatch(/bad CHALLENGE/)
      // A CHALLENGE, then an acceptance without the signature only the user's keys make: refused though the client opted in to --insecure brokers.
      const challenge = challengeFrame(new Challenge({ salt: "c2FsdA==", iterations: 64, nonce: newNonce() }))
      const unsigned = yield* impostor(
        challenge,
        welcomeFrame(new Welcome({ protocol: PROTOCOL_VERSION, brokerId: 0, maxBatchBytes: 1 << 20, maxSessions: 64 }))
      )
      const skipped = yield* refusal(
        PublisherLayers.make({
          brokers: unsigned,
          topic: "t",
          clientId: 1,
          credentials: ALICE,
          insecure: true,
          connectTimeoutMs: 2_000,
          ackTimeoutMs: 10_000
        }),
        1
      )
      expect(skipped).toMatchObject({ _tag: "BrokerRejected", code: "auth-failed" })
      expect(skipped.message).toMatch(/did not prove that it holds this user's keys/)
      const unsignedRead = yield* impostor(
        challenge,
        subscribedFrame(new Subscribed({ protocol: PROTOCOL_VERSION, brokerId: 0, start: 0, earliest: 0, end: 0 }))
      )
      const skippedRead = yield* Effect.flip(
        makeRemote({ brokers: unsignedRead, credentials: ALICE, insecure: true, connectTimeoutMs: 2_000 }).subscribe(
          "t"
        )
      )
      expect(skippedRead).toMatchObject({ _tag: "SubscriberConnectionFailed", code: "auth-failed" })
      expect(skippedRead.message).toMatch(/did not prove that it holds this user's keys/)
    }))

  it.scopedLive("credentials found in the region's secret file refuse a broker that authenticates nobody (auth-failed, naming --insecure); with the insecure opt-in they publish and read through it; given credentials are refused even then", () =>
    Effect.gen(function*() {
      // An --insecure broker: no credential file, so it challenges nobody.
      const { log, publisher, server } = yield* secureBroker({ insecure: true })
      const found: Credentials = { ...ALICE, implicit: true }
      const refused = yield* refusal(publisher({ clientId: 1, credentials: found }), 1)
      expect(refused).toMatchObject({ _tag: "BrokerRejected", code: "auth-failed" })
      expect(refused.message).toMatch(
        /without authenticating it .*found in the region's secret file.*connect with --insecure/
      )
      const brokers = [{ host: "127.0.0.1", port: server.port }]
      const subscriber = (insecure: boolean) =>
        makeRemote({ brokers, credentials: found, insecure, connectTimeoutMs: 2_000 })
      const unread = yield* Effect.flip(subscriber(false).subscribe("t"))
      expect(unread).toMatchObject({ _tag: "SubscriberConnectionFailed", code: "auth-failed" })
      expect(unread.message).toMatch(/subscribed this client without authenticating it .*connect with --insecure/)
      expect(log.ordered("t").length).toBe(0)

      // Opted in, the same credentials take it.
      const opted = yield* publisher({ clientId: 2, credentials: found, insecure: true })
      yield* publishTestMessages(opted, 2, 10, 10)
      yield* opted.flush(10_000)
      const read = yield* subscriber(true).subscribe("t")
      expect(yield* offsetsRead(read, 10)).toHaveLength(10)
      expect(audit(log.ordered("t"), new Map([[2, 10]]))).toEqual({ messages: 10, ...clean })

      // Given credentials asked for authentication: the opt-in (CXLOG_INSECURE, shared with the brokers) does not excuse them.
      const given = yield* refusal(publisher({ clientId: 3, credentials: ALICE, insecure: true }), 1)
      expect(given).toMatchObject({ _tag: "BrokerRejected", code: "auth-failed" })
      expect(given.message).toMatch(/\(given\) requires the broker's proof: given credentials always do/)
      const givenRead = yield* Effect.flip(
        makeRemote({ brokers, credentials: ALICE, insecure: true, connectTimeoutMs: 2_000 }).subscribe("t")
      )
      expect(givenRead).toMatchObject({ _tag: "SubscriberConnectionFailed", code: "auth-failed" })
      expect(audit(log.ordered("t"), new Map([[2, 10]]))).toEqual({ messages: 10, ...clean })
    }))

  it.scopedLive("a user the file lacks gets the same salt from every broker process of the file, as a real user does: salts do not tell who exists", () =>
    Effect.gen(function*() {
      const path = credentialFile(yield* privateDir)
      const saltOf = (name: string) =>
        Effect.flatMap(
          spawnFixture("decoy-salt", [path, name]),
          (child) => Effect.map(child.next(), (line) => (line as { salt: string }).salt)
        )
      const here = AuthServer.open(path)
      for (const name of ["nobody", ALICE.user]) {
        expect(yield* saltOf(name)).toBe(here.challenge(name, newNonce()).salt)
      }
      expect(here.challenge("nobody", newNonce()).salt).not.toBe(here.challenge("somebody", newNonce()).salt)
    }))

  it.scopedLive("concurrent user changes from several processes lose none: each read, change and rename holds the file's lock", () =>
    Effect.gen(function*() {
      const dir = yield* privateDir
      const path = credentialFile(dir)
      // A crashed writer's lock (its pid gone) does not stop the others.
      writeFileSync(join(dir, "users.lock"), "999999999\n", { mode: 0o600 })
      const writers = yield* Effect.forEach(
        Array.from({ length: 8 }, (_, i) => `w${i}`),
        (prefix) => spawnFixture("credential-writer", [path, prefix, "6"])
      )
      for (const writer of writers) {
        const exit = yield* Deferred.await(writer.exited).pipe(
          Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error(`writer: ${writer.stderr()}`) })
        )
        expect(exit.code, writer.stderr()).toBe(0)
      }
      const names = readCredentialFile(path).users.map((u) => u.name).sort()
      const expected = [
        "alice",
        "bob",
        ...Array.from({ length: 8 }, (_, w) => Array.from({ length: 5 }, (_, i) => `w${w}-${i + 1}`)).flat()
      ].sort()
      expect(names).toEqual(expected)
      expect(existsSync(join(dir, "users.lock"))).toBe(false)
    }))

  it.scopedLive("a credential file opened to others or removed after the broker started refuses new handshakes (auth-failed); chmod 600 restores it", () =>
    Effect.gen(function*() {
      const dir = yield* privateDir
      const path = credentialFile(dir)
      const { server } = yield* secureBroker({ credentials: path })
      expect((yield* rawHandshake(server.port, ALICE, 1)).answer.type).toBe(FrameType.SESSION_OPENED)
      // A chmod changes neither the size nor the modification time.
      /** The broker's answer to alice's HELLO: a CHALLENGE while it can use its file. */
      const answer = (clientId: number) =>
        Effect.gen(function*() {
          const client = yield* rawConnect(server.port)
          client.write(
            helloFrame(
              new Hello({ protocol: PROTOCOL_VERSION, clientId, ackLevel: 1, user: ALICE.user, nonce: newNonce() })
            )
          )
          return yield* client.nextFrame()
        })
      chmodSync(path, 0o644)
      const open = yield* answer(2)
      expect(errorCode(open)).toBe("auth-failed")
      expect(Either.getOrThrow(decodeControl(ErrorBody, open.payload, "internal")).message).toMatch(
        /cannot use its credential file/
      )
      chmodSync(path, 0o600)
      expect((yield* rawHandshake(server.port, ALICE, 3)).answer.type).toBe(FrameType.SESSION_OPENED)
      // Removing the file revokes every user of it.
      rmSync(path)
      expect(errorCode(yield* answer(4))).toBe("auth-failed")
    }))

  it.scopedLive("TLS end to end with a CA the test makes: client certificates required, a client without one refused; beyond loopback only with TLS and authentication", () =>
    Effect.gen(function*() {
      const dir = yield* privateDir
      const certs = makeCertificates(dir)
      const credentials = credentialFile(dir)
      const { log, publisher, server } = yield* secureBroker({
        host: "0.0.0.0",
        credentials,
        tls: { cert: certs.brokerCert, key: certs.brokerKey, clientCa: certs.ca }
      })
      const ca = readFileSync(certs.ca)
      const alice = yield* publisher({
        clientId: 1,
        credentials: ALICE,
        tls: { ca, cert: certs.clientCert, key: certs.clientKey },
        batchBytes: 4096
      })
      yield* publishTestMessages(alice, 1, 2_000, 1_000)
      yield* alice.flush(10_000)
      expect(audit(log.ordered("t"), new Map([[1, 2000]]))).toEqual({ messages: 2000, ...clean })
      // A remote subscriber reads it back over the same TLS port, with its client certificate.
      const subscriber = (tls: { ca: Uint8Array; cert?: Uint8Array; key?: Uint8Array } | undefined) =>
        makeRemote({
          brokers: [{ host: "127.0.0.1", port: server.port }],
          credentials: ALICE,
          connectTimeoutMs: 500,
          ...(tls === undefined ? {} : { tls })
        })
      const subscription = yield* subscriber({ ca, cert: certs.clientCert, key: certs.clientKey }).subscribe("t")
      const read = yield* subscription.batches.pipe(
        Stream.mapConcat((batch) => Array.from(batch, (m) => m.offset)),
        Stream.take(2000),
        Stream.runCollect
      )
      expect(Array.from(read)).toEqual(Array.from({ length: 2000 }, (_, i) => i))
      // Without a client certificate, or in plain TCP, no subscription is taken.
      expect((yield* Effect.flip(subscriber({ ca }).subscribe("t")))._tag).toBe("SubscriberBrokersUnreachable")
      const plainSubscriber = yield* Effect.flip(subscriber(undefined).subscribe("t"))
      expect(plainSubscriber._tag).toBe("SubscriberBrokersUnreachable")
      expect(plainSubscriber.message).toContain(
        "a broker that serves TLS closes plain connections: give tls.ca, --tls-ca"
      )
      // Without a client certificate the TLS handshake fails: no broker is ever reached.
      const anonymous = yield* refusal(
        publisher({ clientId: 2, credentials: ALICE, tls: { ca }, connectTimeoutMs: 500 }),
        2
      )
      expect(anonymous._tag).toBe("BrokersUnreachable")
      // Each refusal says what to change, not only OpenSSL's words.
      expect(anonymous.message).toContain(
        "the broker asks for a client certificate: give tls.cert and tls.key (--tls-client-cert, --tls-client-key)"
      )
      // Plain TCP to a TLS port gets no WELCOME either.
      const plain = yield* refusal(publisher({ clientId: 3, credentials: ALICE, connectTimeoutMs: 500 }), 3)
      expect(plain._tag).toBe("BrokersUnreachable")
      expect(plain.message).toContain("a broker that serves TLS closes plain connections: give tls.ca, --tls-ca")
      const other = makeCertificates(yield* privateDir)
      const otherCa = readFileSync(other.ca)
      // A client certificate another CA signed: under TLS 1.3 the broker's refusal comes after the
      // client's side of the handshake is done, as a close, which says what it may mean.
      const foreign = yield* refusal(
        publisher({
          clientId: 5,
          credentials: ALICE,
          tls: { ca, cert: other.clientCert, key: other.clientKey },
          connectTimeoutMs: 500
        }),
        5
      )
      expect(foreign._tag).toBe("BrokersUnreachable")
      expect(foreign.message).toContain(
        "the broker closed the connection after the TLS handshake, before answering: it may have refused this client's certificate"
      )
      // A subscriber is told the same.
      const foreignSubscriber = yield* Effect.flip(
        subscriber({ ca, cert: other.clientCert, key: other.clientKey }).subscribe("t")
      )
      expect(foreignSubscriber._tag).toBe("SubscriberBrokersUnreachable")
      expect(foreignSubscriber.message).toContain(
        "the broker closed the connection after the TLS handshake, before answering: it may have refused this client's certificate"
      )
      const strangers = yield* refusal(
        publisher({
          clientId: 4,
          credentials: ALICE,
          tls: { ca: otherCa, cert: certs.clientCert, key: certs.clientKey },
          connectTimeoutMs: 500
        }),
        4
      )
      expect(strangers.message).toContain("the broker's certificate is not signed by the CA given (tls.ca, --tls-ca)")

      const memory = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const bare = yield* Effect.flip(BrokerLayers.make({ host: "0.0.0.0" }).pipe(Effect.provide(memory.forBroker(1))))
      // Started from code: the refusal names the options (and the variables of BrokerLayers.config), not the CLI's flags.
      expect(bare.message).toBe(
        "broker cannot listen on 0.0.0.0:0: refusing to serve beyond loopback without TLS and authentication: give `tls: { cert, key }` with `credentials` (a credential file), or `insecure: true` (from the environment, BrokerLayers.config: CXLOG_TLS_CERT and CXLOG_TLS_KEY with CXLOG_CREDENTIALS, or CXLOG_INSECURE; docs/security.md)"
      )
      const tlsOnly = yield* Effect.flip(
        BrokerLayers.make({ host: "0.0.0.0", tls: { cert: certs.brokerCert, key: certs.brokerKey } }).pipe(
          Effect.provide(memory.forBroker(1))
        )
      )
      expect(tlsOnly.message).toMatch(/without authentication:/)
      const insecure = yield* BrokerLayers.make({ host: "0.0.0.0", insecure: true }).pipe(
        Effect.provide(memory.forBroker(1))
      )
      expect(insecure.port).toBeGreaterThan(0)
    }))

  it.scopedLive("a publisher its user's rate keeps closing backs off from reconnecting as from any failure: no storm of connections, nothing lost", () =>
    Effect.gen(function*() {
      const dir = yield* privateDir
      const erin: Credentials = { user: "erin", secret: "e" }
      const credentials = credentialFile(dir, [{ credentials: erin, limits: { messagesPerSecond: 20 } }])
      const { log, publisher, server } = yield* secureBroker({ credentials })
      const p = yield* publisher({ credentials: erin, clientId: 31, ackTimeoutMs: 60_000 })
      // 60 messages one at a time: three seconds of the user's rate, every connection past it closed rate-limited.
      for (let i = 0; i < 60; i++) yield* p.publishAcked(testMessage(31, i, 64))
      expect(audit(log.ordered("t"), new Map([[31, 60]]))).toEqual({ messages: 60, ...clean })
      // Each close doubles the wait before the next connection (25 ms up to 1 s): a few dozen at most,
      // where reconnecting every 25 ms from each welcome made over a hundred.
      const closes = server.stats().rejected["rate-limited"] ?? 0
      expect(closes).toBeGreaterThan(0)
      expect(closes).toBeLessThan(40)
    }))

  it.scopedLive("limits: a connection over its messages a second and a user over its shared budget or connections get their typed errors", () =>
    Effect.gen(function*() {
      const dir = yield* privateDir
      const carol: Credentials = { user: "carol", secret: "c" }
      const dave: Credentials = { user: "dave", secret: "d" }
      const credentials = credentialFile(dir, [
        { credentials: carol, limits: { connections: 1 } },
        { credentials: dave, limits: { messagesPerSecond: 100 } }
      ])
      const { server } = yield* secureBroker({
        credentials,
        limits: { messagesPerSecond: 100_000, bytesPerSecond: 1_000_000 }
      })
      const batch = (clientId: number, epoch: number, seq: number, messages: number) =>
        batchFrame(
          clientId,
          epoch,
          seq,
          Array.from({ length: messages }, (_, i) => testMessage(clientId, seq * messages + i, 64))
        )
      const epochOf = (frame: { sessionEpoch: number }) => frame.sessionEpoch

      // Dave's 100 messages a second are shared by his connections: 60 + 60 overdraws them, the next batch is refused.
      const a = yield* rawHandshake(server.port, dave, 11)
      const b = yield* rawHandshake(server.port, dave, 12)
      a.client.write(batch(11, epochOf(a.answer), 0, 60))
      expect((yield* a.client.nextFrame()).type).toBe(FrameType.ACK)
      b.client.write(batch(12, epochOf(b.answer), 0, 60))
      expect((yield* b.client.nextFrame()).type).toBe(FrameType.ACK)
      a.client.write(batch(11, epochOf(a.answer), 1, 1))
      const limited = yield* a.client.nextFrame()
      expect(errorCode(limited)).toBe("rate-limited")
      expect(Buffer.from(limited.payload).toString()).toMatch(/user dave's limit of 100 messages a second/)

      // Carol holds one connection at most.
      const first = yield* rawHandshake(server.port, carol, 13)
      expect(first.answer.type).toBe(FrameType.SESSION_OPENED)
      const second = yield* rawHandshake(server.port, carol, 14)
      expect(errorCode(second.answer)).toBe("too-many-connections")
      first.client.socket.destroy()
      // Her connection is hers again once the broker has seen the first close: until then a third
      // is refused as the second was (counted below), at most 5 s.
      let third = yield* rawHandshake(server.port, carol, 15)
      let refusedWhileClosing = 0
      for (let tries = 0; errorCode(third.answer) === "too-many-connections" && tries < 500; tries++) {
        refusedWhileClosing++
        yield* Effect.sleep("10 millis")
        third = yield* rawHandshake(server.port, carol, 15)
      }
      expect(third.answer.type).toBe(FrameType.SESSION_OPENED)

      // The connection's own bytes a second: 1 MB, overdrawn by 30 batches of 56 KiB.
      const fast = yield* rawHandshake(server.port, ALICE, 16)
      for (let seq = 0; seq < 30; seq++) fast.client.write(batch(16, epochOf(fast.answer), seq, 800))
      const frames = yield* fast.client.closed
      const refusedWith = frames.map(errorCode).filter((code) => code !== undefined)
      expect(refusedWith).toEqual(["rate-limited"])
      expect(server.stats().rejected).toMatchObject({
        "rate-limited": 2,
        "too-many-connections": 1 + refusedWhileClosing
      })
    }))

  it("rights patterns: `*` matches any run of characters (none too) wherever it stands, the rest of the pattern literally, the whole name", () => {
    const may = (pattern: string, topic: string) =>
      authorize(userRecord("u", "s", { publish: [pattern], read: [] }, undefined, 1), "publish", topic) === undefined
    // A leading `*`: the name must end with the rest.
    expect([may("*.paid", "eu.paid"), may("*.paid", "eu.paid.x"), may("*.paid", ".paid")]).toEqual([true, false, true])
    // Stars inside: their parts in order, each after the last.
    expect([may("a*b*c", "aXbYc"), may("a*b*c", "abc"), may("a*b*c", "acb"), may("a*b*c", "aXcYb")]).toEqual([
      true,
      true,
      false,
      false
    ])
    // A part is looked for past the one before it: not in the prefix, nor before the part before.
    expect([may("ab*b*c", "abXc"), may("ab*b*c", "abbc"), may("x*b*a*y", "xaby"), may("x*b*a*y", "xbay")]).toEqual([
      false,
      true,
      false,
      true
    ])
    // A prefix and a suffix may not share characters of the name: "aba" is not "ab" then "ba".
    expect([may("ab*ba", "aba"), may("ab*ba", "abba"), may("a*b*b", "ab"), may("a*b*b", "abb")]).toEqual([
      false,
      true,
      false,
      true
    ])
    // No star: the whole name, not a part of it.
    expect([may("audit", "audit"), may("audit", "audit.x"), may("audit", "xaudit")]).toEqual([true, false, false])
  })

  it("a secret file is read as NAME:SECRET whatever line end or spaces surround it; one that cannot be used is refused naming it", () => {
    const dir = mkdtempSync(join(tmpdir(), "cxlog-security-"))
    try {
      const file = (name: string, text: string) => {
        writeFileSync(join(dir, name), text, { mode: 0o600 })
        return join(dir, name)
      }
      expect(readSecretFile(file("crlf", "alice:s3cret\r\n"))).toEqual({ user: "alice", secret: "s3cret" })
      expect(readSecretFile(file("spaces", "  alice:s3cret  \n\n"))).toEqual({ user: "alice", secret: "s3cret" })
      const refused = (path: string) => {
        try {
          readSecretFile(path)
        } catch (error) {
          return error
        }
        return expect.unreachable(`${path} was read as a secret file`)
      }
      mkdirSync(join(dir, "a-directory"), { mode: 0o700 })
      const cases: Array<[string, RegExp]> = [
        [join(dir, "a-directory"), /: unreadable secret file: EISDIR/],
        [file("empty", ""), /: not NAME:SECRET$/],
        [file("no-secret", "alice:\n"), /: not NAME:SECRET$/],
        [file("two-users", "alice:s3cret\nbob:other\n"), /: not NAME:SECRET: more than one line/],
        [join(dir, "missing"), /: no such secret file$/]
      ]
      for (const [path, reason] of cases) {
        const error = refused(path)
        expect(error).toBeInstanceOf(CredentialError)
        expect((error as CredentialError).path).toBe(path)
        expect((error as CredentialError).message).toMatch(reason)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("a hand-edited user record is refused where the file is read, naming the user and the field: iterations a client would refuse, rights that are no list", () => {
    const dir = mkdtempSync(join(tmpdir(), "cxlog-security-"))
    try {
      const path = join(dir, "users.json")
      upsertUser(path, userRecord(ALICE.user, ALICE.secret, { publish: ["*"], read: ["*"] }))
      const edited = (change: (user: Record<string, unknown>) => void) => {
        const file = JSON.parse(readFileSync(path, "utf8")) as { users: Array<Record<string, unknown>> }
        change(file.users[0]!)
        writeFileSync(join(dir, "edited.json"), JSON.stringify(file), { mode: 0o600 })
        try {
          readCredentialFile(join(dir, "edited.json"))
        } catch (error) {
          expect(error).toBeInstanceOf(CredentialError)
          return (error as CredentialError).message
        }
        return expect.unreachable("the edited file was read")
      }
      // Every client refuses a challenge of 0 or over 600 000 iterations, and blamed the broker for it.
      for (const iterations of [0, 600_001, 1.5]) {
        expect(edited((user) => (user.iterations = iterations))).toContain(
          `a malformed user record (${ALICE.user}): its iterations: Expected `
        )
      }
      expect(edited((user) => (user.publish = 5))).toContain(`a malformed user record (${ALICE.user}): its publish: `)
      expect(readCredentialFile(path).users[0]!.name).toBe(ALICE.user)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("the head's default files are private; rights patterns; the credential file is refused when others may read it", () => {
    const dir = mkdtempSync(join(tmpdir(), "cxlog-security-"))
    try {
      const users = join(dir, "r.users")
      const secret = join(dir, "r.secret")
      expect(ensureRegionCredentials(users, secret)).toEqual({ created: true })
      expect(ensureRegionCredentials(users, secret)).toEqual({ created: false })
      expect(statSync(users).mode & 0o777).toBe(0o600)
      expect(statSync(secret).mode & 0o777).toBe(0o600)
      const local = readSecretFile(secret)
      const server = AuthServer.open(users)
      const nonce = newNonce()
      const challenge = server.challenge(local.user, nonce)
      expect(server.verify(challenge, clientProof(local, nonce, challenge).proof)?.user.name).toBe(local.user)
      // The file holds derived keys, never the secret.
      expect(readFileSync(users, "utf8")).not.toContain(local.secret)
      const record = userRecord("u", "s", { publish: ["orders.*", "audit"], read: ["*"] }, undefined, 1)
      expect(authorize(record, "publish", "orders.eu")).toBeUndefined()
      expect(authorize(record, "publish", "audit")).toBeUndefined()
      expect(authorize(record, "publish", "auditx")).toMatch(/may not publish/)
      expect(authorize(record, "read", "anything")).toBeUndefined()
      execFileSync("chmod", ["644", users])
      expect(() => AuthServer.open(users)).toThrow(/lets others read it/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
