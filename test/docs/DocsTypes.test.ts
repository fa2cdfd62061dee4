/**
 * Docs that type-check: every TypeScript program block of README.md and docs/ (DocBlocks.ts) is
 * compiled as an application's strict project compiles it — this project's compiler options
 * (strict, exactOptionalPropertyTypes), with `cxlog` and `cxlog/…` this tree's src — and has no
 * error. The docs run (DocsRun.test.ts) strips the blocks' types to run them; here they are
 * checked. Unused names are allowed: a block may show a value it does not use.
 */
import { describe, expect, it } from "@effect/vitest"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import { type DocBlock, docBlocks } from "../helpers/DocBlocks.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

/** Each block as a file of its own beside the package (never written: the compiler host serves it). */
const blockFiles = new Map<string, DocBlock>(
  docBlocks(root).filter((b) => b.program === "ts").map((
    b
  ) => [join(root, ".docs-types", `${b.file.replace(/[^A-Za-z0-9]/g, "-")}-${b.line}.ts`), b])
)

const compilerOptions = (): ts.CompilerOptions => {
  const parsed = ts.getParsedCommandLineOfConfigFile(join(root, "tsconfig.json"), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"))
    }
  })
  return {
    ...parsed!.options,
    noEmit: true,
    noUnusedLocals: false,
    noUnusedParameters: false,
    baseUrl: root,
    paths: { "cxlog": ["./src/index.ts"], "cxlog/*": ["./src/*.ts"] }
  }
}

/** Where a diagnostic is in the docs: the block's file, and the line of the block's opening fence plus the line in it. */
const where = (d: ts.Diagnostic, block: DocBlock) => {
  const line = d.file === undefined || d.start === undefined ? 0 : d.file.getLineAndCharacterOfPosition(d.start).line
  return `${block.file}:${block.line + 1 + line}`
}

describe("docs' TypeScript blocks", () => {
  it("type-check under the project's strict options, cxlog from this tree", async () => {
    const options = compilerOptions()
    const host = ts.createCompilerHost(options)
    const sourceFile = host.getSourceFile.bind(host)
    host.getSourceFile = (name, language, ...rest) => {
      const block = blockFiles.get(name)
      return block === undefined ? sourceFile(name, language, ...rest) : ts.createSourceFile(name, block.code, language)
    }
    host.fileExists = (name) => blockFiles.has(name) || ts.sys.fileExists(name)
    host.readFile = (name) => blockFiles.get(name)?.code ?? ts.sys.readFile(name)
    const program = ts.createProgram([...blockFiles.keys()], options, host)
    // Only the blocks' own diagnostics are wanted: each block is checked alone (what it uses of the
    // tree is checked as far as it needs), a turn of the event loop between blocks. In one
    // synchronous pass over every file the check held this test's process for half a minute and more,
    // and Vitest's worker, not reading its runner's answers meanwhile, failed the run past their 60 s bound.
    const problems: Array<string> = []
    for (const [name, block] of blockFiles) {
      const file = program.getSourceFile(name)!
      for (const d of [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)]) {
        problems.push(`${where(d, block)}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`)
      }
      await new Promise((resolve) => setImmediate(resolve))
    }
    expect(blockFiles.size).toBeGreaterThan(0)
    expect(problems).toEqual([])
  }, 300_000)
})
