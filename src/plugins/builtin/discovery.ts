/**
 * The built-in discovery plugin, compatible with the seed's: `search_tools` ranks the
 * tools this session may use against a query and a goal, and `list_categories` lists
 * plugins. It reads the catalogue the engine hands it, so denied tools never show here.
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
import { contentWords, stem, tokenize } from "./discovery-words.js";

const DETAIL_LEVELS = ["name", "summary", "full"] as const;
type DetailLevel = (typeof DETAIL_LEVELS)[number];

const SEARCH_TOOLS: ToolDefinition = {
  name: "search_tools",
  title: "Search tools",
  description:
    "Find the right tool for a task. Ranks every tool you may use by how well its name, title and description match. " +
    "`query` is precise: a few keywords, and every one must match somewhere. " +
    "`intent` is loose: your goal in a sentence; filler words are ignored, a tool needs only one of the other words, " +
    "and tools matching more of them rank higher. With both, `query` filters and `intent` ranks. " +
    "Plural and verb endings do not matter. Filter by `category` (a plugin name from list_categories). " +
    "`detail_level`: `name` (names only), `summary` (name, title, description; the default) or `full` (adds input and output schemas and annotations). " +
    "With no query, lists every tool (of the category, if given).",
  inputSchema: {
    type: "object",
    properties: {
      query: { type: "string", maxLength: 500, description: "Keywords that must all match, e.g. 'create bug'." },
      category: { type: "string", maxLength: 100, description: "Only tools of this plugin (see list_categories)." },
      intent: {
        type: "string",
        maxLength: 500,
        description: "Your goal in plain words, e.g. 'I want to report a bug in my project'. Ranks tools by how many of its words they match; one is enough.",
      },
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

/** A tool's text as search_tools compares it: lowercased, in words and in stems. */
interface ToolText {
  name: string;
  nameWords: readonly string[];
  nameStems: ReadonlySet<string>;
  titleWords: readonly string[];
  titleStems: ReadonlySet<string>;
  description: string;
  descriptionStems: ReadonlySet<string>;
}

function toolText(tool: ToolDefinition): ToolText {
  const nameWords = tokenize(tool.name);
  const titleWords = tokenize(tool.title);
  return {
    name: tool.name.toLowerCase(),
    nameWords,
    nameStems: new Set(nameWords.map(stem)),
    titleWords,
    titleStems: new Set(titleWords.map(stem)),
    description: tool.description.toLowerCase(),
    descriptionStems: new Set(tokenize(tool.description).map(stem)),
  };
}

/**
 * How well one word matches a tool: 10 a word of its name, 6 part of its name, 5 a word of
 * its title, 3 the start of one, 1 its description (a word of it, or with `partial` any part);
 * 0 nowhere. A word matches as written or by its stem ("bugs" is a word of add_bug's name).
 * Parts count for keywords only: in a sentence they mostly match by chance ("fix" in "prefix").
 */
function wordScore(text: ToolText, word: string, partial: boolean): number {
  const wordStem = stem(word);
  let best = 0;
  if (text.nameWords.includes(word) || text.nameStems.has(wordStem)) best = 10;
  else if (partial && (text.name.includes(word) || (wordStem.length >= 3 && text.name.includes(wordStem)))) best = 6;
  if (text.titleWords.includes(word) || text.titleStems.has(wordStem)) best = Math.max(best, 5);
  else if (partial && text.titleWords.some((titleWord) => titleWord.startsWith(word))) best = Math.max(best, 3);
  if (best === 0 && (text.descriptionStems.has(wordStem) || (partial && text.description.includes(word)))) best = 1;
  return best;
}

/**
 * What each matched goal word adds besides its own score: more than the largest gap between
 * two word scores (10 - 1), so a tool that matches more of the goal's words ranks higher
 * whatever field they were found in.
 */
const INTENT_WORD_BONUS = 10;

/**
 * Scores one tool; 0 means it is left out. Every query word must match (a word in the name
 * weighs most, then title, then description; the whole name typed as words earns a bonus).
 * Goal words only rank, and match whole words (or their stems): each one that matches adds its score and the bonus above, and without
 * query words at least one must match. With neither, every tool scores 1.
 */
export function scoreTool(tool: ToolDefinition, queryWords: readonly string[], intentWords: readonly string[] = []): number {
  if (queryWords.length === 0 && intentWords.length === 0) return 1;
  const text = toolText(tool);
  let total = 0;
  for (const word of queryWords) {
    const score = wordScore(text, word, true);
    if (score === 0) return 0;
    total += score;
  }
  if (queryWords.length > 0 && text.name === queryWords.join("_")) total += 20;
  let matched = 0;
  for (const word of intentWords) {
    const score = wordScore(text, word, false);
    if (score === 0) continue;
    matched += 1;
    total += INTENT_WORD_BONUS + score;
  }
  if (queryWords.length === 0 && matched === 0) return 0;
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
  const queryWords = tokenize(query);
  // A goal's words are counted once each: repeating one must not outrank a tool that matches more of them.
  const intentWords = [...new Set(contentWords(intent))];
  const ranked = queryWords.length > 0 || intentWords.length > 0;

  if (category !== undefined && !catalog.some((entry) => entry.plugin.toLowerCase() === category)) {
    const known = catalog.map((entry) => entry.plugin).join(", ");
    throw new ToolError(`Unknown category ${JSON.stringify(args.category)}. Categories: ${known}.`);
  }
  const scored: Array<{ entry: CatalogEntry; tool: ToolDefinition; score: number }> = [];
  for (const entry of catalog) {
    if (category !== undefined && entry.plugin.toLowerCase() !== category) continue;
    for (const tool of entry.tools) {
      const score = scoreTool(tool, queryWords, intentWords);
      if (score > 0) scored.push({ entry, tool, score });
    }
  }
  // Ties in name order by code unit, not localeCompare: the same on every machine and locale.
  scored.sort((a, b) => b.score - a.score || (a.tool.name < b.tool.name ? -1 : a.tool.name > b.tool.name ? 1 : 0));
  const results = scored.slice(0, limit).map(({ entry, tool, score }) => describeTool(entry, tool, score, detail, ranked));
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
