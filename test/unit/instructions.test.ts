import { test } from "node:test";
import assert from "node:assert/strict";
import { serverInstructions } from "../../src/instructions.js";
import { builtInToolNames } from "../../src/plugins/builtin/index.js";

void test("the instructions name the discovery and directory tools only when the policy allows them", () => {
  const every = serverInstructions(new Set(builtInToolNames()));
  assert.match(every, /call search_tools with a few words describing the task \(or list_categories for an overview\)/);
  assert.match(every, /directories list_allowed_directories names/);
  assert.match(every, /recorded in an audit log/);

  const noSearch = serverInstructions(new Set(["list_categories", "read_file"]));
  assert.doesNotMatch(noSearch, /search_tools|list_allowed_directories/);
  assert.match(noSearch, /call list_categories\./);

  const bare = serverInstructions(new Set(["add_bug"]));
  assert.doesNotMatch(bare, /search_tools|list_categories|list_allowed_directories/);
  assert.match(bare, /^Tools here run on the user's machine.*do not repeat the same call\.$/);
});
