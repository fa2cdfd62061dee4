/**
 * Every typed error the docs name, of a service the package exports, is exported by name too: a
 * user who reads `InvalidSubscribeOptions` in the docs can `instanceof` it from "cxlog".
 */
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import * as cxlog from "../../src/index.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

const filesUnder = (dir: string, suffix: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? filesUnder(join(dir, entry.name), suffix)
      : entry.name.endsWith(suffix)
      ? [join(dir, entry.name)]
      : []
  )

describe("the package's errors", () => {
  it("every error class the docs name, of a service module the package exports from, is exported", () => {
    const index = readFileSync(join(root, "src", "index.ts"), "utf8")
    const docs = [join(root, "README.md"), ...filesUnder(join(root, "docs"), ".md")]
      .map((file) => readFileSync(file, "utf8"))
      .join("\n")
    const named = new Set([...docs.matchAll(/`([A-Z][A-Za-z]+)`/g)].map((m) => m[1]!))
    const missing: Array<string> = []
    let checked = 0
    for (const file of filesUnder(join(root, "src", "services"), ".ts")) {
      const module = `./${relative(join(root, "src"), file).replace(/\.ts$/, ".js")}`
      // A module the package does not export from at all (the mirror's, the CLI's own) is not its API.
      if (!index.includes(`"${module}"`)) continue
      const source = readFileSync(file, "utf8")
      for (const [, name] of source.matchAll(/export class (\w+)\s+extends\s+(?:Schema|Data)\.TaggedError/g)) {
        if (!named.has(name!)) continue
        checked++
        if (!(name! in cxlog)) missing.push(`${name} (${module})`)
      }
    }
    expect(checked).toBeGreaterThan(50)
    expect(missing).toEqual([])
  })
})
