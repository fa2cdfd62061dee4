// The import rules docs/architecture.md states ("What may import what"), checked in CI by
// `npm run lint`. Type-only imports count: a circle closed by `import type` is still a circle.
const DOMAINS = ["region", "log", "control", "ipc", "net", "groups", "mirror"]

/** A domain's files, contract or layer, may not import a domain to its right. */
const rightOf = DOMAINS.slice(0, -1).map((domain, i) => ({
  name: `${domain}-not-to-${DOMAINS.slice(i + 1).join("-")}`,
  comment: `the ${domain} domain sits left of ${DOMAINS.slice(i + 1).join(", ")}: it may not import them`,
  severity: "error",
  from: { path: `^src/(services|layers)/${domain}/` },
  to: { path: `^src/(services|layers)/(${DOMAINS.slice(i + 1).join("|")})/` }
}))

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "an import circle, type-only or not: each backing interface lives in the lower file of its pair",
      severity: "error",
      from: {},
      to: { circular: true }
    },
    {
      name: "not-to-unresolvable",
      comment: "an import that resolves to no file",
      severity: "error",
      from: {},
      to: { couldNotResolve: true }
    },
    ...rightOf,
    {
      name: "native-imports-no-domain",
      comment: "the addon's loader is the floor: it imports no domain",
      severity: "error",
      from: { path: "^src/native/" },
      to: { path: "^src/(services|layers|programs)/" }
    },
    {
      name: "services-are-contracts",
      comment:
        "a contract imports effect and other contracts; the one exception is the wire's types in services/net (type-only)",
      severity: "error",
      from: { path: "^src/services/" },
      to: { path: "^src/(layers|programs)/", dependencyTypesNot: ["type-only"] }
    },
    {
      name: "services-types-only-from-the-wire",
      comment: "the type-only exception is services/net's, from layers/net",
      severity: "error",
      from: { path: "^src/services/", pathNot: "^src/services/net/" },
      to: { path: "^src/(layers|programs)/" }
    },
    {
      name: "domains-not-to-compositions",
      comment: "RegionLayout.ts and Roles.ts compose every domain: no domain layer imports them back",
      severity: "error",
      from: { path: "^src/(services|layers)/(region|log|control|ipc|net|groups|mirror)/" },
      to: { path: "^src/layers/(RegionLayout|Roles)\\.ts$" }
    },
    {
      name: "only-programs-import-programs",
      comment: "programs/ is the top floor (the CLI); the package's entries and the layers never import it",
      severity: "error",
      from: { pathNot: "^src/programs/" },
      to: { path: "^src/programs/" }
    },
    {
      name: "base-files-import-no-floor",
      comment: "the root files (Settings, Durations, Metrics, PackageRoot) are below every domain",
      severity: "error",
      from: { path: "^src/(Settings|Durations|Metrics|PackageRoot)\\.ts$" },
      to: { path: "^src/(services|layers|programs|native)/" }
    },
    {
      name: "nats-only-in-mirror",
      comment: "the NATS client is the mirror's (and the bench's peers')",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/(layers/mirror|programs)/" },
      to: { path: "@nats-io/" }
    },
    {
      name: "node-runtime-only-in-programs",
      comment: "only programs end in NodeRuntime.runMain",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/programs/" },
      to: { path: "@effect/platform-node/" }
    },
    {
      name: "src-not-to-tests",
      comment: "the package never imports its tests or benches",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^(test|bench|examples)/" }
    }
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"]
    },
    exclude: { path: "^(dist|build|node_modules)/" }
  }
}
