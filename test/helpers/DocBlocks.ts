/**
 * The fenced code blocks of README.md and docs/**.md, as the docs test runs them. A block's info
 * string says what it is: `ts`, `js` or `sh` is a program, run as written; a second word
 * `fragment` marks one that is deliberately not (a piece of a larger program, a command for
 * another terminal); none, `text` or a data format (`yaml`, `json`) is output or data.
 */
import { readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"

export type ProgramLanguage = "ts" | "js" | "sh"

export interface DocBlock {
  /** Where: the file (from the repository's root) and the line of its opening fence. */
  readonly file: string
  readonly line: number
  readonly info: string
  /** Set for a program (not a fragment). */
  readonly program: ProgramLanguage | undefined
  readonly code: string
}

const PROGRAMS: ReadonlyArray<string> = ["ts", "js", "sh"]
const DATA: ReadonlyArray<string> = ["", "text", "yaml", "json"]

/** Why an info string is not one the docs may use, or undefined. */
export const infoProblem = (info: string): string | undefined => {
  const [language = "", modifier, ...rest] = info.split(/\s+/).filter((word) => word !== "")
  if (rest.length > 0) return `too many words in ${JSON.stringify(info)}`
  if (PROGRAMS.includes(language)) {
    return modifier === undefined || modifier === "fragment"
      ? undefined
      : `unknown modifier ${JSON.stringify(modifier)}`
  }
  if (DATA.includes(language)) {
    return modifier === undefined
      ? undefined
      : `${JSON.stringify(language)} takes no modifier`
  }
  return `unknown language ${JSON.stringify(language)} (programs: ${
    PROGRAMS.join(", ")
  }, with "fragment" when not runnable; output: none or text)`
}

const markdownFiles = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? markdownFiles(join(dir, entry.name))
      : entry.name.endsWith(".md")
      ? [join(dir, entry.name)]
      : []
  )

/** Every fenced block of README.md and docs/, in file order; a fence may be indented (inside a list item). */
export const docBlocks = (root: string): Array<DocBlock> =>
  [join(root, "README.md"), ...markdownFiles(join(root, "docs")).sort()].flatMap((path) => {
    const lines = readFileSync(path, "utf8").split("\n")
    const blocks: Array<DocBlock> = []
    for (let i = 0; i < lines.length; i++) {
      const open = /^(\s*)```(.*)$/.exec(lines[i]!)
      if (open === null) continue
      const indent = open[1]!.length
      const info = open[2]!.trim()
      const body: Array<string> = []
      let end = i + 1
      while (end < lines.length && !/^\s*```\s*$/.test(lines[end]!)) body.push(lines[end++]!.slice(indent))
      const [language = "", modifier] = info.split(/\s+/)
      blocks.push({
        file: relative(root, path),
        line: i + 1,
        info,
        program: PROGRAMS.includes(language) && modifier === undefined ? (language as ProgramLanguage) : undefined,
        code: `${body.join("\n")}\n`
      })
      i = end
    }
    return blocks
  })
