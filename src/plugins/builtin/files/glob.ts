/**
 * Globs for search_files, matched one path component at a time as the walk goes down, in
 * bounded time. A regex compiled from a glob (picomatch's) backtracks: a model's `*?*?*?…#`
 * froze the server on an ordinary file name. Here each component is matched by the greedy
 * wildcard algorithm (at most name x pattern steps), the pattern's components are followed as a
 * set of states (no backtracking across `/`), and every step counts against the search's budget.
 *
 * Syntax: `*` (any run within a name), `?` (one character), `[abc]`, `[a-z]`, `[!x]` / `[^x]`,
 * `{a,b}` (expanded; nested allowed, at most 64 alternatives), `**` as a whole component (any
 * number of directories, none included), `\` escapes. Case-sensitive, as the file system is.
 */

export class GlobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GlobError";
  }
}

/** Thrown by a match once the search's budget of steps is spent. */
export class GlobBudgetError extends Error {
  constructor() {
    super("glob matching budget spent");
    this.name = "GlobBudgetError";
  }
}

type Token =
  | { kind: "literal"; char: string }
  | { kind: "one" }
  | { kind: "star" }
  | { kind: "class"; negated: boolean; ranges: ReadonlyArray<readonly [number, number]> };

type Component = { globstar: true } | { globstar: false; tokens: readonly Token[] };

/** A position in one alternative: the index of the next component to match. */
export type GlobState = number;

export interface Glob {
  /** The states before any component (the walk's root). */
  readonly start: ReadonlySet<GlobState>;
  /** The states after one more component named `name`. */
  step(states: ReadonlySet<GlobState>, name: string): Set<GlobState>;
  /** Whether a path that reached these states matches. */
  accepts(states: ReadonlySet<GlobState>): boolean;
  /** Whether a longer path could still match: a directory with no live state is not worth entering. */
  live(states: ReadonlySet<GlobState>): boolean;
}

export interface GlobBudget {
  steps: number;
  readonly max: number;
}

const MAX_ALTERNATIVES = 64;

export function compileGlob(pattern: string, budget: GlobBudget): Glob {
  // NFC on both sides: macOS names are NFD, patterns typed are NFC ("é" is one or two code points).
  const alternatives = [...new Set(expandBraces(pattern.normalize("NFC")))].map(parseAlternative);
  // States are numbered across alternatives: alternative a, component i -> offsets[a] + i.
  const offsets: number[] = [];
  const owner: Array<{ alternative: number; index: number }> = [];
  for (let a = 0; a < alternatives.length; a++) {
    offsets.push(owner.length);
    for (let i = 0; i <= (alternatives[a] as Component[]).length; i++) owner.push({ alternative: a, index: i });
  }
  const stateOf = (alternative: number, index: number): GlobState => (offsets[alternative] as number) + index;

  /** Adds `state` and, past each `**` (which may match no component), the states after it. */
  const close = (into: Set<GlobState>, alternative: number, index: number): void => {
    const components = alternatives[alternative] as Component[];
    for (let i = index; i <= components.length; i++) {
      spend(budget, 1);
      into.add(stateOf(alternative, i));
      if (i === components.length || !(components[i] as Component).globstar) break;
    }
  };

  const start = new Set<GlobState>();
  for (let a = 0; a < alternatives.length; a++) close(start, a, 0);

  return {
    start,
    step(states, name) {
      const next = new Set<GlobState>();
      const chars = Array.from(name.normalize("NFC"));
      for (const state of states) {
        spend(budget, 1);
        const { alternative, index } = owner[state] as { alternative: number; index: number };
        const components = alternatives[alternative] as Component[];
        if (index === components.length) continue;
        const component = components[index] as Component;
        if (component.globstar) {
          close(next, alternative, index);
        } else if (matchComponent(component.tokens, chars, budget)) {
          close(next, alternative, index + 1);
        }
      }
      return next;
    },
    accepts(states) {
      for (const state of states) {
        const { alternative, index } = owner[state] as { alternative: number; index: number };
        if (index === (alternatives[alternative] as Component[]).length) return true;
      }
      return false;
    },
    live(states) {
      for (const state of states) {
        const { alternative, index } = owner[state] as { alternative: number; index: number };
        if (index < (alternatives[alternative] as Component[]).length) return true;
      }
      return false;
    },
  };
}

function spend(budget: GlobBudget, steps: number): void {
  budget.steps += steps;
  if (budget.steps > budget.max) throw new GlobBudgetError();
}

/** The greedy wildcard match: on a mismatch, the last `*` takes one more character. */
function matchComponent(tokens: readonly Token[], chars: readonly string[], budget: GlobBudget): boolean {
  let t = 0;
  let c = 0;
  let star = -1;
  let starChar = 0;
  while (c < chars.length) {
    const token = tokens[t];
    // A class costs as many steps as it has ranges to look through.
    spend(budget, token?.kind === "class" ? token.ranges.length : 1);
    if (token?.kind === "star") {
      star = t++;
      starChar = c;
    } else if (token !== undefined && matchesOne(token, chars[c] as string)) {
      t++;
      c++;
    } else if (star >= 0) {
      t = star + 1;
      c = ++starChar;
    } else {
      return false;
    }
  }
  while (tokens[t]?.kind === "star") t++;
  return t === tokens.length;
}

function matchesOne(token: Token, char: string): boolean {
  switch (token.kind) {
    case "literal":
      return token.char === char;
    case "one":
      return true;
    case "class": {
      const code = char.codePointAt(0) as number;
      const inside = token.ranges.some(([low, high]) => code >= low && code <= high);
      return inside !== token.negated;
    }
    default:
      return false;
  }
}

function parseAlternative(pattern: string): Component[] {
  if (pattern.startsWith("/")) throw new GlobError("a pattern is relative to the searched directory: drop the leading /");
  const components: Component[] = [];
  for (const part of splitComponents(pattern)) {
    if (part === "") throw new GlobError("a pattern (or one of its {a,b} alternatives) has an empty component: a doubled, leading or trailing /");
    if (part === "." || part === "..") throw new GlobError(`"${part}" is not allowed in a pattern`);
    if (part === "**") {
      // `**/**` matches what `**` does: one state instead of many.
      if (components[components.length - 1]?.globstar !== true) components.push({ globstar: true });
      continue;
    }
    components.push({ globstar: false, tokens: parseComponent(part) });
  }
  return components;
}

/** The pattern's components: split at each `/` that is not escaped; an escaped one is refused. */
function splitComponents(pattern: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === "\\") {
      if (pattern[i + 1] === "/") throw new GlobError("a name cannot hold /, so \\/ never matches: use / to go into a directory");
      i++;
    } else if (pattern[i] === "/") {
      parts.push(pattern.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(pattern.slice(start));
  return parts;
}

function parseComponent(part: string): Token[] {
  const chars = Array.from(part);
  const tokens: Token[] = [];
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i] as string;
    if (char === "\\") {
      const next = chars[++i];
      if (next === undefined) throw new GlobError("a pattern ends with a lone \\");
      tokens.push({ kind: "literal", char: next });
    } else if (char === "*") {
      // `**` inside a name is one `*`; runs of stars add nothing but steps.
      if (tokens[tokens.length - 1]?.kind !== "star") tokens.push({ kind: "star" });
    } else if (char === "?") {
      tokens.push({ kind: "one" });
    } else if (char === "[") {
      i = parseClass(chars, i, tokens);
    } else {
      tokens.push({ kind: "literal", char });
    }
  }
  return tokens;
}

/** Parses `[...]` starting at `open`; returns the index of its `]`. */
function parseClass(chars: readonly string[], open: number, tokens: Token[]): number {
  let i = open + 1;
  const negated = chars[i] === "!" || chars[i] === "^";
  if (negated) i++;
  const ranges: Array<readonly [number, number]> = [];
  for (let first = true; ; first = false) {
    let char = chars[i];
    if (char === undefined) throw new GlobError("a [ in the pattern is never closed with ]");
    if (char === "]" && !first) break;
    if (char === "[" && chars[i + 1] === ":") throw new GlobError("classes like [:alpha:] are not supported; write the range, as in [a-zA-Z]");
    if (char === "\\") char = chars[++i] ?? "\\";
    const low = char.codePointAt(0) as number;
    if (chars[i + 1] === "-" && chars[i + 2] !== undefined && chars[i + 2] !== "]") {
      // The range's end may be escaped too: [a-\z].
      const escaped = chars[i + 2] === "\\" && chars[i + 3] !== undefined;
      const highChar = (escaped ? chars[i + 3] : chars[i + 2]) as string;
      const high = highChar.codePointAt(0) as number;
      if (high < low) throw new GlobError(`the range ${char}-${highChar} in the pattern runs backwards`);
      ranges.push([low, high]);
      i += escaped ? 4 : 3;
    } else {
      ranges.push([low, low]);
      i += 1;
    }
  }
  tokens.push({ kind: "class", negated, ranges });
  return i;
}

/** `a{b,c{d,e}}f` -> `abf`, `acdf`, `acef`. A brace without a top-level comma stays literal. */
export function expandBraces(pattern: string): string[] {
  const open = findBrace(pattern);
  if (open === undefined) return [pattern];
  const { start, end, parts } = open;
  const prefix = pattern.slice(0, start);
  const suffixes = expandBraces(pattern.slice(end + 1));
  const out: string[] = [];
  for (const part of parts) {
    for (const middle of expandBraces(part)) {
      for (const suffix of suffixes) {
        out.push(prefix + middle + suffix);
        if (out.length > MAX_ALTERNATIVES) throw new GlobError(`the pattern's braces expand to more than ${MAX_ALTERNATIVES} alternatives`);
      }
    }
  }
  return out;
}

function findBrace(pattern: string): { start: number; end: number; parts: string[] } | undefined {
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === "\\") {
      i++;
      continue;
    }
    if (pattern[i] !== "{") continue;
    let depth = 0;
    const commas: number[] = [];
    for (let j = i; j < pattern.length; j++) {
      const char = pattern[j];
      if (char === "\\") {
        j++;
      } else if (char === "{") {
        depth++;
      } else if (char === "}") {
        depth--;
        if (depth === 0) {
          if (commas.length === 0) break; // `{x}`: literal, look for the next brace
          const bounds = [i, ...commas, j];
          const parts = bounds.slice(0, -1).map((from, k) => pattern.slice(from + 1, bounds[k + 1]));
          return { start: i, end: j, parts };
        }
      } else if (char === "," && depth === 1) {
        commas.push(j);
      }
    }
  }
  return undefined;
}
