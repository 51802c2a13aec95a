/**
 * Reads a DuckDuckGo results page (the Lite page, and the HTML page's markup too) into
 * hits: title, target URL, snippet. A pure function of the page's text and address.
 *
 * The page is scanned tag by tag rather than matched with one pattern per result, so a
 * result whose snippet is missing, an attribute in another order or quoting, a comment or
 * a script holding look-alike markup cannot make one result swallow the next. What comes
 * out is bounded: titles and snippets are clipped, and only http(s) targets are kept.
 */
import { clip, collapseWhitespace, decodeEntities } from "./html-text.js";

export interface SearchHit {
  title: string;
  url: string;
  snippet?: string;
}

export interface ResultsPage {
  hits: SearchHit[];
  /** The page is a bot check (DuckDuckGo's "anomaly" page), not a results page. */
  challenged: boolean;
}

export const TITLE_MAX = 300;
export const SNIPPET_MAX = 800;
/** Text gathered for one title or snippet at most, before clipping: bounds an unclosed element. */
const CAPTURE_MAX = 8 * 1024;

/** Class names of a result's link (Lite, then the HTML page) and of its snippet. */
const LINK_CLASSES: ReadonlySet<string> = new Set(["result-link", "result__a"]);
const SNIPPET_CLASSES: ReadonlySet<string> = new Set(["result-snippet", "result__snippet"]);
/** Elements whose content is not text of the page. */
const RAW_TEXT: ReadonlySet<string> = new Set(["script", "style", "template", "textarea", "noscript"]);

const ATTRIBUTE = /([^\s"'=<>`/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'<>`]+)))?/g;
const CHALLENGE = /anomaly(?:-modal|\.js)|challenge-form/i;

type LinkRule = (tag: string, attributes: Readonly<Record<string, string>>) => boolean;

const byClass: LinkRule = (tag, attributes) => tag === "a" && hasClass(attributes, LINK_CLASSES);
/** What the page is read with when no link carries a known class: DuckDuckGo marks result links nofollow. */
const byNofollow: LinkRule = (tag, attributes) => tag === "a" && tokens(attributes.rel).includes("nofollow");

export function parseResultsPage(html: string, pageUrl: string): ResultsPage {
  let hits = scan(html, pageUrl, byClass);
  if (hits.length === 0) hits = scan(html, pageUrl, byNofollow);
  return { hits, challenged: hits.length === 0 && CHALLENGE.test(html) };
}

interface Capture {
  kind: "title" | "snippet";
  tag: string;
  depth: number;
  text: string;
  href?: string;
}

function scan(html: string, pageUrl: string, isLink: LinkRule): SearchHit[] {
  const hits: SearchHit[] = [];
  const seen = new Set<string>();
  // The hit a snippet that follows belongs to: none after a link that was dropped (an ad).
  let open: SearchHit | undefined;
  let capture: Capture | undefined;

  const finish = (): void => {
    const done = capture as Capture;
    capture = undefined;
    const text = collapseWhitespace(decodeEntities(done.text));
    if (done.kind === "snippet") {
      if (open !== undefined && text !== "") open.snippet = clip(text, SNIPPET_MAX);
      open = undefined;
      return;
    }
    open = undefined;
    const url = done.href === undefined ? undefined : resultTarget(done.href, pageUrl);
    if (url === undefined || text === "" || seen.has(url)) return;
    seen.add(url);
    open = { title: clip(text, TITLE_MAX), url };
    hits.push(open);
  };

  let textStart = 0;
  for (let tag = nextTag(html, 0); tag !== undefined; tag = nextTag(html, tag.end)) {
    if (capture !== undefined) {
      capture.text += html.slice(textStart, tag.start);
      if (capture.text.length > CAPTURE_MAX) finish();
    }
    textStart = tag.end;
    const { name, closing } = tag;
    if (capture !== undefined && name === capture.tag) {
      capture.depth += closing ? -1 : 1;
      if (capture.depth === 0) finish();
      continue;
    }
    if (closing) continue;
    const attributes = parseAttributes(tag.attributes);
    const startsLink = isLink(name, attributes);
    const startsSnippet = !startsLink && hasClass(attributes, SNIPPET_CLASSES);
    if (!startsLink && !startsSnippet) continue;
    // Markup that never closed the element before: what it held so far is all it gets.
    if (capture !== undefined) finish();
    capture = startsLink
      ? { kind: "title", tag: name, depth: 1, text: "", ...(attributes.href === undefined ? {} : { href: attributes.href }) }
      : { kind: "snippet", tag: name, depth: 1, text: "" };
  }
  if (capture !== undefined) {
    capture.text += html.slice(textStart);
    finish();
  }
  return hits;
}

interface Tag {
  start: number;
  /** Just past the tag's `>` (for a raw-text element, past its end tag: its content is skipped). */
  end: number;
  name: string;
  closing: boolean;
  attributes: string;
}

/**
 * The next start or end tag at or after `from`, comments and the content of raw-text
 * elements skipped. Linear in the page: a tag, comment or quoted value left open runs to
 * the end of the page, where the scan stops (a regex would retry from every later `<`).
 */
function nextTag(html: string, from: number): Tag | undefined {
  for (let at = html.indexOf("<", from); at !== -1; at = html.indexOf("<", at + 1)) {
    if (html.startsWith("<!--", at)) {
      const close = html.indexOf("-->", at + 4);
      if (close === -1) return undefined;
      at = close + 2;
      continue;
    }
    const closing = html[at + 1] === "/";
    const nameStart = closing ? at + 2 : at + 1;
    let nameEnd = nameStart;
    while (nameEnd < html.length && isNameCharacter(html.charCodeAt(nameEnd), nameEnd === nameStart)) nameEnd++;
    // `<` not followed by a name is text (`a < b`).
    if (nameEnd === nameStart) continue;
    let end = nameEnd;
    for (let quote = 0; end < html.length; end++) {
      const code = html.charCodeAt(end);
      if (quote !== 0) {
        if (code === quote) quote = 0;
      } else if (code === 0x22 || code === 0x27) {
        quote = code;
      } else if (code === 0x3e) {
        break;
      }
    }
    if (end >= html.length) return undefined;
    // Names are ASCII, so lower-casing keeps positions (the whole page lower-cased might not: "İ" grows).
    const name = html.slice(nameStart, nameEnd).toLowerCase();
    const tag: Tag = { start: at, end: end + 1, name, closing, attributes: html.slice(nameEnd, end) };
    if (!closing && RAW_TEXT.has(name)) {
      // What a script holds is not markup of the page.
      const endTag = new RegExp(`</${name}`, "gi");
      endTag.lastIndex = tag.end;
      tag.end = endTag.exec(html)?.index ?? html.length;
      // Its end tag is read next, as an end tag no capture waits for.
    }
    return tag;
  }
  return undefined;
}

/** ASCII letters, then also digits and `-`: the tag names a results page uses. */
function isNameCharacter(code: number, first: boolean): boolean {
  const letter = (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a);
  return letter || (!first && ((code >= 0x30 && code <= 0x39) || code === 0x2d));
}

/**
 * The address a result link leads to: DuckDuckGo's redirect (`//duckduckgo.com/l/?uddg=...`)
 * unwrapped, any other link to DuckDuckGo itself (an ad's `y.js`, its own pages) dropped, and
 * only http(s) kept (`javascript:` and `data:` never reach the model as a result).
 */
export function resultTarget(href: string, pageUrl: string): string | undefined {
  let url: URL;
  try {
    url = new URL(decodeEntities(href).trim(), pageUrl);
    if (isDuckDuckGo(url.hostname)) {
      const target = /^\/l\/?$/.test(url.pathname) ? url.searchParams.get("uddg") : null;
      if (target === null) return undefined;
      url = new URL(target);
      if (isDuckDuckGo(url.hostname)) return undefined;
    }
  } catch {
    return undefined;
  }
  return url.protocol === "https:" || url.protocol === "http:" ? url.href : undefined;
}

function isDuckDuckGo(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  return host === "duckduckgo.com" || host.endsWith(".duckduckgo.com");
}

function parseAttributes(source: string): Record<string, string> {
  const attributes: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const match of source.matchAll(ATTRIBUTE)) {
    const name = (match[1] as string).toLowerCase();
    // The first of a repeated attribute wins, as in a browser.
    if (name in attributes) continue;
    attributes[name] = match[2] ?? match[3] ?? match[4] ?? "";
  }
  return attributes;
}

function tokens(value: string | undefined): string[] {
  return value === undefined ? [] : value.toLowerCase().split(/\s+/).filter((token) => token !== "");
}

function hasClass(attributes: Readonly<Record<string, string>>, names: ReadonlySet<string>): boolean {
  return tokens(attributes.class).some((token) => names.has(token));
}
