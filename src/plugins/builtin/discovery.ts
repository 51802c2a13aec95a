/**
 * The built-in discovery plugin, compatible with the seed's: `search_tools` ranks the
 * tools this session may use against a query, and `list_categories` lists plugins.
 * It reads the catalogue the engine hands it, so denied tools never show here.
 */
import {
  structured,
  ToolError,
  type CatalogEntry,
  type JsonObject,
  type JsonValue,
  type Plugin,
  type ToolContext,
  type ToolDefinition,
  type ToolOutcome,
} from "../contract.js";

const DETAIL_LEVELS = ["name", "summary", "full"] as const;
type DetailLevel = (typeof DETAIL_LEVELS)[number];

const SEARCH_TOOLS: ToolDefinition = {
  name: "search_tools",
  title: "Search tools",
  description:
    "Find the right tool for a task. Ranks every tool you may use by how well its name, title and description match `query` " +
    "(words are matched separately; all words must match somewhere). Filter by `category` (a plugin name from list_categories). " +
    "`detail_level`: `name` (names only), `summary` (name, title, description; the default) or `full` (adds input and output schemas and annotations). " +
    "With no query, lists every tool (of the category, if given).",
  inputSchema: {
    type: "object",
    properties: {
      query: { type: "string", maxLength: 500, description: "Words describing what you want to do, e.g. 'create bug'." },
      category: { type: "string", maxLength: 100, description: "Only tools of this plugin (see list_categories)." },
      intent: { type: "string", maxLength: 500, description: "A longer description of the goal; matched like query." },
      detail_level: { type: "string", enum: [...DETAIL_LEVELS], default: "summary", description: "How much to return per tool." },
      include_unavailable: { type: "boolean", default: false, description: "Accepted for compatibility; every listed tool is available." },
      limit: { type: "integer", minimum: 1, maximum: 100, default: 20, description: "Results at most." },
    },
    additionalProperties: false,
  },
  outputSchema: {
    type: "object",
    properties: {
      query: { type: "string" },
      total: { type: "integer", minimum: 0 },
      results: {
        type: "array",
        items: {
          type: "object",
          properties: {
            name: { type: "string" },
            category: { type: "string" },
            title: { type: "string" },
            description: { type: "string" },
            score: { type: "number" },
            inputSchema: { type: "object" },
            outputSchema: { type: "object" },
            annotations: { type: "object" },
          },
          required: ["name", "category"],
        },
      },
    },
    required: ["query", "total", "results"],
    additionalProperties: false,
  },
  annotations: { title: "Search tools", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
};

const LIST_CATEGORIES: ToolDefinition = {
  name: "list_categories",
  title: "List tool categories",
  description: "List the tool categories (plugins) of this server with their version, description, tool count and tool names.",
  inputSchema: { type: "object", additionalProperties: false },
  outputSchema: {
    type: "object",
    properties: {
      categories: {
        type: "array",
        items: {
          type: "object",
          properties: {
            category: { type: "string" },
            version: { type: "string" },
            description: { type: "string" },
            tool_count: { type: "integer", minimum: 0 },
            tools: { type: "array", items: { type: "string" } },
          },
          required: ["category", "version", "description", "tool_count", "tools"],
          additionalProperties: false,
        },
      },
    },
    required: ["categories"],
    additionalProperties: false,
  },
  annotations: { title: "List tool categories", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
};

export const DISCOVERY_VERSION = "1.0.0";

export function createDiscoveryPlugin(): Plugin {
  return {
    name: "discovery",
    version: DISCOVERY_VERSION,
    description: "Find tools by what they do, and list the tool categories.",
    tools: [SEARCH_TOOLS, LIST_CATEGORIES],
    // async: a ToolError thrown while searching becomes a rejection, as the contract expects.
    // eslint-disable-next-line @typescript-eslint/require-await
    async execute(tool: string, args: JsonObject, ctx: ToolContext): Promise<ToolOutcome> {
      switch (tool) {
        case "search_tools":
          return searchTools(args, ctx.catalog.entries());
        case "list_categories":
          return listCategories(ctx.catalog.entries());
        default:
          throw new ToolError(`discovery has no tool "${tool}"`);
      }
    },
  };
}

/** Lowercased words of at least one letter or digit. */
export function tokenize(text: string): string[] {
  return text.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((word) => word.length > 0);
}

/**
 * Scores one tool against the query words: every word must match somewhere; matches
 * in the name weigh most, then title, then description. 0 means no match.
 */
export function scoreTool(tool: ToolDefinition, words: readonly string[]): number {
  if (words.length === 0) return 1;
  const name = tool.name.toLowerCase();
  const nameWords = tokenize(tool.name);
  const titleWords = tokenize(tool.title);
  const description = tool.description.toLowerCase();
  let total = 0;
  for (const word of words) {
    let best = 0;
    if (nameWords.includes(word)) best = 10;
    else if (name.includes(word)) best = 6;
    if (titleWords.includes(word)) best = Math.max(best, 5);
    else if (titleWords.some((titleWord) => titleWord.startsWith(word))) best = Math.max(best, 3);
    if (best === 0 && description.includes(word)) best = 1;
    if (best === 0) return 0;
    total += best;
  }
  if (name === words.join("_")) total += 20;
  return total;
}

function searchTools(args: JsonObject, catalog: readonly CatalogEntry[]): ToolOutcome {
  const query = typeof args.query === "string" ? args.query : "";
  const intent = typeof args.intent === "string" ? args.intent : "";
  const category = typeof args.category === "string" ? args.category.toLowerCase() : undefined;
  const detail = (typeof args.detail_level === "string" ? args.detail_level : "summary") as DetailLevel;
  if (!DETAIL_LEVELS.includes(detail)) {
    throw new ToolError(`detail_level must be one of ${DETAIL_LEVELS.join(", ")} (got ${JSON.stringify(args.detail_level)})`);
  }
  const limit = typeof args.limit === "number" ? args.limit : 20;
  const words = tokenize(`${query} ${intent}`);

  if (category !== undefined && !catalog.some((entry) => entry.plugin.toLowerCase() === category)) {
    const known = catalog.map((entry) => entry.plugin).join(", ");
    throw new ToolError(`Unknown category ${JSON.stringify(args.category)}. Categories: ${known}.`);
  }
  const scored: Array<{ entry: CatalogEntry; tool: ToolDefinition; score: number }> = [];
  for (const entry of catalog) {
    if (category !== undefined && entry.plugin.toLowerCase() !== category) continue;
    for (const tool of entry.tools) {
      const score = scoreTool(tool, words);
      if (score > 0) scored.push({ entry, tool, score });
    }
  }
  scored.sort((a, b) => b.score - a.score || a.tool.name.localeCompare(b.tool.name));
  const results = scored.slice(0, limit).map(({ entry, tool, score }) => describeTool(entry, tool, score, detail, words.length > 0));
  return structured({ query: query || intent, total: scored.length, results });
}

function describeTool(entry: CatalogEntry, tool: ToolDefinition, score: number, detail: DetailLevel, ranked: boolean): JsonObject {
  const result: JsonObject = { name: tool.name, category: entry.plugin };
  if (ranked) result.score = score;
  if (detail === "name") return result;
  result.title = tool.title;
  result.description = tool.description;
  if (detail === "summary") return result;
  result.inputSchema = tool.inputSchema;
  if (tool.outputSchema) result.outputSchema = tool.outputSchema;
  result.annotations = tool.annotations as JsonValue;
  return result;
}

function listCategories(catalog: readonly CatalogEntry[]): ToolOutcome {
  return structured({
    categories: catalog.map((entry) => ({
      category: entry.plugin,
      version: entry.version,
      description: entry.description,
      tool_count: entry.tools.length,
      tools: entry.tools.map((tool) => tool.name),
    })),
  });
}
