/**
 * A Schema parse failure as one line a person reads: the first field that is wrong and how,
 * never Schema's tree of its own transformations (for a peer's refused body, a topic spec that
 * does not decode, …).
 */
import { ParseResult, SchemaAST } from "effect"

/** The first failure in `issue` and the path to it; a union's is taken whole (every member failed). */
export const firstFailure = (
  issue: ParseResult.ParseIssue,
  path: ReadonlyArray<PropertyKey> = []
): { readonly path: ReadonlyArray<PropertyKey>; readonly issue: ParseResult.ParseIssue } => {
  switch (issue._tag) {
    case "Pointer":
      return firstFailure(issue.issue, [...path, ...(Array.isArray(issue.path) ? issue.path : [issue.path])])
    case "Transformation":
    case "Refinement":
      return firstFailure(issue.issue, path)
    case "Composite":
      if (SchemaAST.isUnion(issue.ast)) return { path, issue: new ParseResult.Type(issue.ast, issue.actual) }
      return firstFailure(Array.isArray(issue.issues) ? issue.issues[0]! : issue.issues as ParseResult.ParseIssue, path)
    default:
      return { path, issue }
  }
}

/** What is wrong at a failure, in words on one line (`Expected a number between 1 and 64, actual 99`). */
export const issueWords = (issue: ParseResult.ParseIssue): string =>
  (ParseResult.ArrayFormatter.formatIssueSync(issue)[0]?.message ?? "does not decode").replace(/\s*\n\s*/g, " ")

/** The first failure of `error` as `field.path: words`, or the words alone for the value as a whole. */
export const firstIssueLine = (error: ParseResult.ParseError): string => {
  const failure = firstFailure(error.issue)
  const words = issueWords(failure.issue)
  return failure.path.length > 0 ? `${failure.path.map(String).join(".")}: ${words}` : words
}
