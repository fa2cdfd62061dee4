/**
 * Who may use a broker, and for what: the credential file, the salted challenge–response every
 * TCP session runs (SCRAM-SHA-256 in spirit), per-topic rights and per-user limits. One module
 * for any TCP session — publishers and remote subscribers — so the handshake step
 * (`AuthServer.challenge` → `AuthServer.verify`) and the rights check (`authorize`) are the
 * same everywhere. Its rooms: AuthKeys (the keys and what both sides sign), AuthClient (the
 * client's proof and its rule for a broker's acceptance), AuthHandshake (the broker's step),
 * AuthRights (rights and rate budgets), AuthCredentialFile (the file, its Schema and its lock),
 * AuthRegionFiles (secret files and a region's default files).
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
export {
  brokerAcceptanceProblem,
  clientProof,
  clientProofAsync,
  type Credentials,
  CREDENTIALS_HINT
} from "./AuthClient.js"
export {
  bindCredentialFile,
  changeUser,
  CredentialError,
  type CredentialFile,
  exposedModeProblem,
  readCredentialFile,
  type RegionBinding,
  removeUser,
  upsertUser,
  type UserLimits,
  type UserRecord,
  userRecord,
  writeCredentialFile
} from "./AuthCredentialFile.js"
export { authenticate, AuthServer, revokedSinceSignIn } from "./AuthHandshake.js"
export { newNonce, newSecret } from "./AuthKeys.js"
export {
  authDirectory,
  defaultCredentialPath,
  defaultSecretPath,
  ensureRegionCredentials,
  localCredentials,
  type LocalRegion,
  readSecretFile,
  removeDefaultCredentials,
  removeRegionCredentials,
  stageSecretFile,
  withLocalCredentials,
  writeSecretFile
} from "./AuthRegionFiles.js"
export { type Action, authorize, RateBudget } from "./AuthRights.js"
