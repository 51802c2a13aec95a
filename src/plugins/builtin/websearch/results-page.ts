/**
 * Reads a DuckDuckGo results page (the Lite page, and the HTML page's markup too) into
 * hits: title, target URL, snippet. A pure function of the page's text and address.
 *
 * The page is scanned tag by tag, in time linear in its size whatever it holds, and read the
 * way a browser would show it: comments, scripts and styles are not text, a quote opens an
 * attribute value only after `=`, a new link ends an open one and a new row or cell ends an
 * open cell. So broken markup cannot make one result swallow the next, and text a browser
 * never shows cannot reach the model. What comes out is bounded: titles, snippets and URLs
 * are clipped or dropped, ads are dropped by their container, only http(s) targets are kept.
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
  /** The page has DuckDuckGo's search box (an input named q): a results page, even with no hits. */
  recognized: boolean;
}

export const TITLE_MAX = 300;
export const SNIPPET_MAX = 800;
/** A result's address longer than this (before or after unwrapping) is dropped, not clipped: a cut URL is a wrong one. */
export const URL_MAX = 2048;
/** Text gathered for one title or snippet at most, before clipping: bounds an unclosed element. */
const CAPTURE_MAX = 8 * 1024;

/** Class names of a result's link (Lite, then the HTML page) and of its snippet. */
const LINK_CLASSES: ReadonlySet<string> = new Set(["result-link", "result__a"]);
const SNIPPET_CLASSES: ReadonlySet<string> = new Set(["result-snippet", "result__snippet"]);
/** Elements whose content is not text of the page. */
const RAW_TEXT: ReadonlySet<string> = new Set(["script", "style", "template", "textarea", "noscript", "title"]);
/** Elements that end a line where a browser shows them: a space stands for each. */
const BREAKS: ReadonlySet<string> = new Set(["br", "p", "div", "li", "ul", "ol", "td", "th", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "dd", "dt", "blockquote", "pre"]);
const CELLS: ReadonlySet<string> = new Set(["td", "th"]);
/** End tags that end an open cell (its own end tag is optional in HTML). */
const CELL_ENDERS: ReadonlySet<string> = new Set(["tr", "table", "tbody", "thead", "tfoot"]);

// HTML's own whitespace, as tagEnd reads it: a quote is tried as a value only where tagEnd found it closed.
const ATTRIBUTE = /([^ \t\n\f\r"'=<>`/]+)(?:[ \t\n\f\r]*=[ \t\n\f\r]*(?:"([^"]*)"|'([^']*)'|([^ \t\n\f\r"'<>`]+)))?/g;
const CHALLENGE = /anomaly(?:-modal|\.js)|challenge-form/i;

type Attributes = Readonly<Record<string, string>>;
type LinkRule = (tag: string, attributes: Attributes) => boolean;

const byClass: LinkRule = (tag, attributes) => tag === "a" && hasClass(attributes, LINK_CLASSES);
/** What the page is read with when no link carries a known class: DuckDuckGo marks result links nofollow. */
const byNofollow: LinkRule = (tag, attributes) => tag === "a" && tokens(attributes.rel).includes("nofollow");

export function parseResultsPage(html: string, pageUrl: string): ResultsPage {
  const first = scan(html, pageUrl, byClass, "keep");
  // Read by nofollow marks, DuckDuckGo's own links (settings, next page) are not results.
  const hits = first.hits.length > 0 ? first.hits : scan(html, pageUrl, byNofollow, "drop").hits;
  return { hits, challenged: hits.length === 0 && CHALLENGE.test(html), recognized: first.recognized };
}

interface Capture {
  kind: "title" | "snippet";
  tag: string;
  depth: number;
  text: string;
  href?: string;
  /** A link inside an ad's container. */
  ad: boolean;
}

function scan(html: string, pageUrl: string, isLink: LinkRule, ownPages: "keep" | "drop"): { hits: SearchHit[]; recognized: boolean } {
  const hits: SearchHit[] = [];
  const seen = new Set<string>();
  // The hit a snippet that follows belongs to: none after a link that was dropped (an ad).
  let open: SearchHit | undefined;
  let capture: Capture | undefined;
  // Inside an ad's container (a Lite row, an HTML-page result block) until the next container starts.
  let inAd = false;
  let recognized = false;

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
    const url = done.ad || done.href === undefined ? undefined : resultTarget(done.href, pageUrl, ownPages);
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
    // A comment, a doctype, a processing instruction, or the unclosed rest of the page: not text.
    if (name.startsWith("#")) continue;
    if (closing) {
      if (capture === undefined) continue;
      if (name === capture.tag) {
        if (--capture.depth === 0) finish();
      } else if (CELLS.has(capture.tag) && CELL_ENDERS.has(name)) {
        finish();
      } else if (BREAKS.has(name)) {
        capture.text += " ";
      }
      continue;
    }
    const attributes = parseAttributes(tag.attributes);
    if (name === "input" && attributes.name === "q") recognized = true;
    if (name === "tr" || (name === "div" && tokens(attributes.class).includes("result"))) inAd = isAdContainer(attributes);
    const startsLink = isLink(name, attributes);
    const startsSnippet = !startsLink && hasClass(attributes, SNIPPET_CLASSES);
    if (capture !== undefined) {
      // A link cannot hold a link, and a new row or cell ends an open cell: as a browser reads them.
      const implied = (capture.tag === "a" && name === "a") || (CELLS.has(capture.tag) && (CELLS.has(name) || name === "tr"));
      if (startsLink || startsSnippet || implied) {
        finish();
      } else {
        if (name === capture.tag) capture.depth++;
        if (BREAKS.has(name)) capture.text += " ";
        continue;
      }
    }
    if (!startsLink && !startsSnippet) continue;
    capture = startsLink
      ? { kind: "title", tag: name, depth: 1, text: "", ad: inAd, ...(attributes.href === undefined ? {} : { href: attributes.href }) }
      : { kind: "snippet", tag: name, depth: 1, text: "", ad: inAd };
  }
  if (capture !== undefined) {
    capture.text += html.slice(textStart);
    finish();
  }
  return { hits, recognized };
}

/** Lite marks an ad's rows `result-sponsored`; the HTML page its block `result--ad`. */
function isAdContainer(attributes: Attributes): boolean {
  return tokens(attributes.class).some((token) => token.includes("sponsored") || token.startsWith("result--ad"));
}

interface Tag {
  start: number;
  /** Just past the tag's `>` (for a raw-text element, at its end tag: its content is skipped). */
  end: number;
  /** Lower-case; `#comment`, `#markup` (doctype, processing instruction) or `#rest` (an unclosed tag to the page's end). */
  name: string;
  closing: boolean;
  attributes: string;
}

/**
 * The next tag at or after `from`. Linear in the page: a tag, comment or quoted value left
 * open runs to the end of the page, where the scan stops (a regex would retry from every later `<`).
 */
function nextTag(html: string, from: number): Tag | undefined {
  for (let at = html.indexOf("<", from); at !== -1; at = html.indexOf("<", at + 1)) {
    if (html.startsWith("<!--", at)) {
      const close = html.indexOf("-->", at + 4);
      return { start: at, end: close === -1 ? html.length : close + 3, name: "#comment", closing: false, attributes: "" };
    }
    if (html[at + 1] === "!" || html[at + 1] === "?") {
      const close = html.indexOf(">", at + 2);
      return { start: at, end: close === -1 ? html.length : close + 1, name: "#markup", closing: false, attributes: "" };
    }
    const closing = html[at + 1] === "/";
    const nameStart = closing ? at + 2 : at + 1;
    let nameEnd = nameStart;
    while (nameEnd < html.length && isNameCharacter(html.charCodeAt(nameEnd), nameEnd === nameStart)) nameEnd++;
    // `<` not followed by a name is text (`a < b`).
    if (nameEnd === nameStart) continue;
    const end = tagEnd(html, nameEnd);
    if (end === -1) return { start: at, end: html.length, name: "#rest", closing: false, attributes: "" };
    // Names are ASCII, so lower-casing keeps positions (the whole page lower-cased might not: "İ" grows).
    const name = html.slice(nameStart, nameEnd).toLowerCase();
    const tag: Tag = { start: at, end: end + 1, name, closing, attributes: html.slice(nameEnd, end) };
    if (!closing && RAW_TEXT.has(name)) {
      // What a script holds is not markup of the page; its end tag is read next.
      const endTag = new RegExp(`</${name}`, "gi");
      endTag.lastIndex = tag.end;
      tag.end = endTag.exec(html)?.index ?? html.length;
    }
    return tag;
  }
  return undefined;
}

/** The index of the `>` ending a tag whose attributes start at `from`, or -1. A quote opens a value only after `=`. */
function tagEnd(html: string, from: number): number {
  let afterEquals = false;
  for (let i = from; i < html.length; i++) {
    const code = html.charCodeAt(i);
    if (code === 0x3e) return i;
    if ((code === 0x22 || code === 0x27) && afterEquals) {
      const close = html.indexOf(html[i] as string, i + 1);
      if (close === -1) return -1;
      i = close;
      afterEquals = false;
    } else if (code === 0x3d) {
      afterEquals = true;
    } else if (code !== 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0c && code !== 0x0d) {
      afterEquals = false;
    }
  }
  return -1;
}

/** ASCII letters, then also digits and `-`: the tag names a results page uses. */
function isNameCharacter(code: number, first: boolean): boolean {
  const letter = (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a);
  return letter || (!first && ((code >= 0x30 && code <= 0x39) || code === 0x2d));
}

/**
 * The address a result link leads to: DuckDuckGo's redirect (`//duckduckgo.com/l/?uddg=...`)
 * unwrapped; an ad's click link (`y.js`), a redirect without a target and, with `ownPages:
 * "drop"`, any other DuckDuckGo page dropped; only http(s) kept (`javascript:` and `data:` never
 * reach the model as a result); a user name or password taken out (`https://bank.example@evil.example/`
 * is shown as the address it is); an address longer than URL_MAX dropped.
 */
export function resultTarget(href: string, pageUrl: string, ownPages: "keep" | "drop" = "keep"): string | undefined {
  if (href.length > URL_MAX * 3) return undefined;
  let url: URL;
  try {
    url = new URL(decodeEntities(href).trim(), pageUrl);
    if (isDuckDuckGo(url.hostname) && /^\/l\/?$/.test(url.pathname)) {
      const target = url.searchParams.get("uddg");
      if (target === null) return undefined;
      url = new URL(target);
    }
  } catch {
    return undefined;
  }
  if (isDuckDuckGo(url.hostname) && (ownPages === "drop" || url.pathname === "/y.js")) return undefined;
  if (url.protocol !== "https:" && url.protocol !== "http:") return undefined;
  url.username = "";
  url.password = "";
  return url.href.length > URL_MAX ? undefined : url.href;
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

function hasClass(attributes: Attributes, names: ReadonlySet<string>): boolean {
  return tokens(attributes.class).some((token) => names.has(token));
}
