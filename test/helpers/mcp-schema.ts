/**
 * Validates what the server writes against the official MCP 2025-11-25 JSON Schema:
 * every message against JSONRPCMessage, results against the result type of the
 * method they answer, notifications against ServerNotification.
 */
import { readFileSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import type { ValidateFunction } from "ajv";
import { SPEC_SCHEMA } from "./project.js";

const RESULT_TYPES: Record<string, string> = {
  initialize: "InitializeResult",
  ping: "EmptyResult",
  "tools/list": "ListToolsResult",
  "tools/call": "CallToolResult",
  "logging/setLevel": "EmptyResult",
};

const addFormats = addFormatsModule.default;

let cache: Map<string, ValidateFunction> | undefined;

function validators(): Map<string, ValidateFunction> {
  if (cache) return cache;
  const schema = JSON.parse(readFileSync(SPEC_SCHEMA, "utf8")) as Record<string, unknown>;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema(schema, "mcp");
  cache = new Map();
  for (const name of ["JSONRPCMessage", "ServerNotification", "JSONRPCErrorResponse", ...Object.values(RESULT_TYPES)]) {
    cache.set(name, ajv.compile({ $ref: `mcp#/$defs/${name}` }));
  }
  return cache;
}

function check(name: string, value: unknown): void {
  const validate = validators().get(name)!;
  if (!validate(value)) {
    throw new Error(`message does not conform to ${name}: ${JSON.stringify(validate.errors?.slice(0, 5))}\n${JSON.stringify(value).slice(0, 2000)}`);
  }
}

/**
 * Throws when `message` (one parsed stdout line) breaks the spec. `methodOf` maps a
 * response id to the method of the request it answers, when known.
 */
export function assertServerMessage(message: unknown, methodOf?: (id: unknown) => string | undefined): void {
  check("JSONRPCMessage", message);
  const record = message as Record<string, unknown>;
  if ("method" in record) {
    check("ServerNotification", record);
    return;
  }
  if ("error" in record) {
    check("JSONRPCErrorResponse", record);
    return;
  }
  const method = methodOf?.(record.id);
  const type = method === undefined ? undefined : RESULT_TYPES[method];
  if (type) check(type, record.result);
}
