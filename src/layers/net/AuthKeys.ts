/**
 * The keys of the challenge–response (SCRAM-SHA-256 in spirit, Auth.ts): the salted secret
 * (PBKDF2, cached per salt), the client and server keys derived from it, the message both sides
 * sign, nonces and secrets, and the constant-time comparison of what they sign.
 */
import { createHash, createHmac, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto"

/** PBKDF2 rounds for new users: the client pays them once per connection (cached per salt), the broker never. */
export const DEFAULT_ITERATIONS = 4096
export const KEY_BYTES = 32

export const hmac = (key: Uint8Array, text: string | Uint8Array) => createHmac("sha256", key).update(text).digest()
export const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest()
export const xor = (a: Uint8Array, b: Uint8Array) => {
  const out = Buffer.alloc(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!
  return out
}
export const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64")
export const unb64 = (text: string) => Buffer.from(text, "base64")

const saltedCache = new Map<string, Buffer>()
const saltedKey = (secret: string, salt: string, iterations: number) =>
  `${salt}:${iterations}:${createHash("sha256").update(secret).digest("base64")}`
const remember = (key: string, value: Buffer) => {
  if (saltedCache.size > 64) saltedCache.clear()
  saltedCache.set(key, value)
  return value
}
/** The salted secret (PBKDF2), cached so a reconnecting client does not pay the rounds again. */
export const salted = (secret: string, salt: string, iterations: number): Buffer => {
  const key = saltedKey(secret, salt, iterations)
  return saltedCache.get(key) ?? remember(key, pbkdf2Sync(secret, unb64(salt), iterations, KEY_BYTES, "sha256"))
}
/** `salted` off the JS thread (libuv's pool): a client's event loop keeps serving its other connections meanwhile. */
export const saltedAsync = (secret: string, salt: string, iterations: number): Promise<Buffer> => {
  const key = saltedKey(secret, salt, iterations)
  const cached = saltedCache.get(key)
  if (cached !== undefined) return Promise.resolve(cached)
  return new Promise((resolve, reject) =>
    pbkdf2(
      secret,
      unb64(salt),
      iterations,
      KEY_BYTES,
      "sha256",
      (error, value) => error === null ? resolve(remember(key, value)) : reject(error)
    )
  )
}

export const clientKeyOf = (saltedSecret: Uint8Array) => hmac(saltedSecret, "Client Key")
export const serverKeyOf = (saltedSecret: Uint8Array) => hmac(saltedSecret, "Server Key")

/** The text both sides sign: the user and both nonces, so a proof is good for one handshake only. */
export const authMessage = (user: string, clientNonce: string, serverNonce: string) =>
  `cxlog-auth-1,${user},${clientNonce},${serverNonce}`

export const newNonce = (): string => randomBytes(18).toString("base64")
export const newSecret = (): string => randomBytes(24).toString("base64url")

/** Whether the WELCOME's signature is the one only a holder of the user's keys can make. */
export const serverSignatureMatches = (expected: string, got: string | undefined): boolean => {
  if (got === undefined) return false
  const a = unb64(expected)
  const b = unb64(got)
  return a.length === b.length && timingSafeEqual(a, b)
}
