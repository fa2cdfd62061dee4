// The house's lint and format, as the Effect monorepo has them: typescript-eslint's recommended
// rules without type information (fast: the type checker runs in `npm test` already), and dprint
// through @effect/eslint-plugin as the formatter, with the Effect monorepo's settings. `npm run
// lint` checks, `npm run lint:fix` formats. CI runs it before the tests (.ci/run).
import effect from "@effect/eslint-plugin"
import js from "@eslint/js"
import tseslint from "typescript-eslint"

export default tseslint.config(
  {
    ignores: [
      "dist/**",
      "build/**",
      "node_modules/**",
      "prebuilds/**",
      ".docs-run/**",
      ".fixtures-build/**",
      "examples/*/dist/**",
      "examples/*/node_modules/**"
    ]
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    plugins: { "@effect": effect },
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module"
    },
    rules: {
      "@effect/dprint": ["error", {
        config: {
          indentWidth: 2,
          lineWidth: 120,
          semiColons: "asi",
          quoteStyle: "alwaysDouble",
          trailingCommas: "never",
          operatorPosition: "maintain",
          "arrowFunction.useParentheses": "force"
        }
      }],
      // TypeScript reports these itself (noUnusedLocals, noUnusedParameters, unresolved names).
      "@typescript-eslint/no-unused-vars": "off",
      "no-undef": "off",
      // `any` appears where a type must accept every instance of a generic (Setting<any>, Flag<any>).
      "@typescript-eslint/no-explicit-any": "off",
      // Effect's own idioms: `interface X extends Schema.Type<typeof X> {}`, `Data.TaggedError("E")<{}>`.
      "@typescript-eslint/no-empty-object-type": ["error", {
        allowInterfaces: "with-single-extends",
        allowObjectTypes: "always"
      }],
      "no-duplicate-imports": ["error", { allowSeparateTypeImports: true }],
      // `== null` is the one loose comparison: null or undefined, as an error callback's argument is.
      "eqeqeq": ["error", "always", { null: "ignore" }],
      "no-var": "error",
      // A callback's handle declared before the callback that clears it, assigned once after.
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }]
    }
  },
  {
    // The environment is read in one place per domain: its settings table (docs/architecture.md).
    files: ["src/**/*.ts"],
    ignores: ["src/Settings.ts", "src/**/*Settings.ts"],
    rules: {
      "no-restricted-syntax": ["error", {
        selector: "MemberExpression[object.name='process'][property.name='env']",
        message: "read settings through the domain's settings table (src/Settings.ts, …Settings.ts), not process.env"
      }]
    }
  },
  {
    // @effect/vitest's `layer` leaves its block's runtime on the module-wide `it` (test/helpers/SharedLayer.ts).
    files: ["test/**/*.ts", "examples/*/test/**/*.ts"],
    ignores: ["test/helpers/SharedLayer.ts"],
    rules: {
      "no-restricted-imports": ["error", {
        paths: [{
          name: "@effect/vitest",
          importNames: ["layer"],
          message: "share a layer with sharedLayer (test/helpers/SharedLayer.ts): `layer` leaves its runtime on `it`"
        }]
      }]
    }
  }
)
