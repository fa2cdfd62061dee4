/**
 * The digest of what the prebuilt addons are built from (the C++ source, binding.gyp's flags and
 * node-addon-api's version): scripts/prebuilds.mjs records it in prebuilds/manifest.json, and a
 * test compares it with the tree's, so a change to any of them calls for `npm run prebuilds`.
 */
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")

export const addonSourceDigest = () => {
  const hash = createHash("sha256")
  for (const file of ["src/native/cxlog_native.cc", "binding.gyp"]) hash.update(readFileSync(join(root, file)))
  const addonApi = createRequire(join(root, "package.json")).resolve("node-addon-api/package.json")
  hash.update(`node-addon-api ${JSON.parse(readFileSync(addonApi, "utf8")).version}`)
  return hash.digest("hex")
}
