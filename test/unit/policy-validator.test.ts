/**
 * The build-time (standalone) policy validator is the run-time one: same verdicts and
 * the same errors, made from the same schema.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { parse } from "yaml";
import { ROOT } from "../helpers/project.js";
import {
  compilePolicyValidator,
  GENERATED_VALIDATOR_FILE,
  POLICY_FORMATS,
  policySchemaSha256,
  policyValidator,
  policyValidatorSource,
} from "../../src/security/policy/schema.js";

const generatedPath = join(ROOT, "dist", "src", "security", "policy", GENERATED_VALIDATOR_FILE);

test("make build generates the validator from the current schema", () => {
  assert.ok(existsSync(generatedPath), "dist has the generated validator (make build)");
  const generated = createRequire(import.meta.url)(generatedPath) as { schemaSha256: string };
  assert.equal(generated.schemaSha256, policySchemaSha256(), "generated from this very schema");
});

test("the compiled tests use the precompiled validator; source runs compile it", () => {
  policyValidator();
  const compiledRun = import.meta.url.endsWith(".js");
  assert.equal(policyValidatorSource(), compiledRun ? "precompiled" : "compiled");
});

test("precompiled and run-time validators agree on every fixture and on broken variants", () => {
  const generated = createRequire(import.meta.url)(generatedPath) as { create(formats: typeof POLICY_FORMATS): (data: unknown) => boolean };
  const precompiled = generated.create(POLICY_FORMATS) as unknown as ((data: unknown) => boolean) & { errors?: unknown[] | null };
  const runtime = compilePolicyValidator();
  const fixtures = [join(ROOT, "policy.yaml"), join(ROOT, "test", "fixtures", "seed-policy.yaml")];
  const dir = join(ROOT, "test", "fixtures", "policies");
  for (const name of readdirSync(dir)) fixtures.push(join(dir, name));
  const documents: unknown[] = fixtures.map((file) => parse(readFileSync(file, "utf8")) as unknown);
  documents.push(
    { version: "1.0", network: { allowed_ranges: ["10.0.0.0/33", "nope"] } },
    { version: "1.0", filesystem: { allowed_path: [] } },
    { version: 2, tools: { rate_limits: { default: -1 } } },
    { version: "1.0", network: { allowed_endpoints: [{ host: "bad host!", ports: [0] }] } },
    { version: "1.0", audit: { fsync: "sometimes" } },
  );
  let invalid = 0;
  for (const document of documents) {
    const a = precompiled(document);
    const b = runtime(document);
    assert.equal(a, b, JSON.stringify(document).slice(0, 200));
    const strip = (errors: unknown) => JSON.parse(JSON.stringify(errors ?? [])) as unknown;
    assert.deepEqual(strip(precompiled.errors), strip(runtime.errors));
    if (!a) invalid += 1;
  }
  assert.ok(invalid >= 5, "the broken variants were refused");
});
