/**
 * The built-in plugins, in the order the server registers them. One list for the server and
 * for check-policy, which reads their tool names to say which policy entries name no tool.
 */
import type { Plugin } from "../contract.js";
import { createBugtrackerPlugin } from "./bugtracker/index.js";
import { createDiscoveryPlugin } from "./discovery.js";
import { createFilesPlugin } from "./files/index.js";
import { createStatusPlugin, type SecurityStatus } from "./status.js";
import { createWebSearchPlugin, type WebSearchOptions } from "./websearch/index.js";

export interface BuiltInOptions {
  /** What security_status reports, read at each call. */
  readStatus: () => SecurityStatus | Promise<SecurityStatus>;
  webSearch: WebSearchOptions;
}

export function createBuiltInPlugins(options: BuiltInOptions): Plugin[] {
  return [createDiscoveryPlugin(), createBugtrackerPlugin(), createFilesPlugin(), createWebSearchPlugin(options.webSearch), createStatusPlugin(options.readStatus)];
}

/** The names of the built-in tools (plugins made only to be read: nothing runs, nothing is opened). */
export function builtInToolNames(): string[] {
  const inert = createBuiltInPlugins({
    readStatus: () => Promise.reject(new Error("not serving")),
    webSearch: { userAgent: "" },
  });
  return inert.flatMap((plugin) => plugin.tools.map((tool) => tool.name));
}
