/**
 * Reads a DuckDuckGo results page (the Lite page, and the HTML page's markup too) into
 * hits: title, target URL, snippet. A pure function of the page's text and address.
 *
 * The page is scanned tag by tag, in time linear in its size whatever it holds, and read the
 * way a browser would show it: comments, scripts and styles are not text, nor is what is hidden
 * (see hidden-content.ts), a quote opens an attribute value only after `=`, a new link ends an
 * open one and a new row or cell ends an open cell. So broken markup cannot make one result swallow the next, and text a browser
 * never shows cannot reach the model. What comes out is bounded: titles, snippets and URLs
 * are clipped or dropped, ads are dropped by their container, only http(s) targets are kept.
 */
import { clip, decodeEntities, visibleText } from "./html-text.js";
import { nextTag, type Attributes } from "./html-tags.js";
import { HiddenContent } from "./hidden-content.js";
import { OpenElement, TableCount } from "./open-element.js";

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
/** Elements that end a line where a browser shows them: a space stands for each. */
const BREAKS: ReadonlySet<string> = new Set(["br", "p", "div", "li", "ul", "ol", "td", "th", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "dd", "dt", "blockquote", "pre"]);
const CELLS: ReadonlySet<string> = new Set(["td", "th"]);
/** End tags that end an open cell (its own end tag is optional in HTML). */
const CELL_ENDERS: ReadonlySet<string> = new Set(["tr", "table", "tbody", "thead", "tfoot"]);
/** Start tags that end an open link: a browser never lets a link run across cells or rows. */
const TABLE_PARTS: ReadonlySet<string> = new Set(["td", "th", "tr", "table", "tbody", "thead", "tfoot", "caption"]);

const CHALLENGE = /anomaly(?:-modal|\.js)|challenge-form/i;

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
  // The ad's container the scan is in (a Lite row, an HTML-page result block), until it ends:
  // a row of a table nested in it, or a result block inside it, is still the ad.
  let ad: OpenElement | undefined;
  const tables = new TableCount();
  const hidden = new HiddenContent();
  let recognized = false;

  const finish = (): void => {
    const done = capture as Capture;
    capture = undefined;
    const text = visibleText(decodeEntities(done.text));
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
  for (let tag = nextTag(html, 0); tag !== undefined; tag = nextTag(html, tag.end, hidden.reading)) {
    if (capture !== undefined) {
      if (hidden.shown) capture.text += html.slice(textStart, tag.start);
      if (capture.text.length > CAPTURE_MAX) finish();
    }
    textStart = tag.end;
    const { name, closing } = tag;
    // A comment, a doctype, a processing instruction, or the unclosed rest of the page: not text.
    if (name.startsWith("#")) continue;
    tables.before(tag);
    // A tag of svg or math neither opens nor closes a link, cell or ad of the page.
    if (hidden.see(tag, tables.open, capture?.tag === "a")) continue;
    if (ad?.endsAt(tag, tables.open) === true) ad = undefined;
    tables.after(tag);
    if (closing) {
      if (capture === undefined) continue;
      if (name === capture.tag) {
        if (--capture.depth === 0) finish();
      } else if ((CELLS.has(capture.tag) || capture.tag === "a") && (CELL_ENDERS.has(name) || (capture.tag === "a" && CELLS.has(name)))) {
        // An open link or cell ends with its row or table (a link also with its cell), as a browser closes them.
        finish();
      } else if (BREAKS.has(name)) {
        capture.text += " ";
      }
      continue;
    }
    const { attributes } = tag;
    if (name === "input" && attributes.name === "q") recognized = true;
    if (ad === undefined && (name === "tr" || (name === "div" && tokens(attributes.class).includes("result"))) && isAdContainer(attributes)) {
      ad = new OpenElement(name, tables.open);
    }
    const startsLink = isLink(name, attributes);
    const startsSnippet = !startsLink && hasClass(attributes, SNIPPET_CLASSES);
    if (capture !== undefined) {
      // A link cannot hold a link, and a new row or cell ends an open cell: as a browser reads them.
      const implied =
        (capture.tag === "a" && (name === "a" || TABLE_PARTS.has(name))) || (CELLS.has(capture.tag) && (CELLS.has(name) || name === "tr"));
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
      ? { kind: "title", tag: name, depth: 1, text: "", ad: ad !== undefined, ...(attributes.href === undefined ? {} : { href: attributes.href }) }
      : { kind: "snippet", tag: name, depth: 1, text: "", ad: ad !== undefined };
  }
  if (capture !== undefined) {
    if (hidden.shown) capture.text += html.slice(textStart);
    finish();
  }
  return { hits, recognized };
}

/** Lite marks an ad's rows `result-sponsored`; the HTML page its block `result--ad`. */
function isAdContainer(attributes: Attributes): boolean {
  return tokens(attributes.class).some((token) => token.includes("sponsored") || token.startsWith("result--ad"));
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

function tokens(value: string | undefined): string[] {
  // HTML splits class and rel on ASCII whitespace only (a no-break space is part of a token).
  return value === undefined ? [] : value.toLowerCase().split(/[\t\n\f\r ]+/).filter((token) => token !== "");
}

function hasClass(attributes: Attributes, names: ReadonlySet<string>): boolean {
  return tokens(attributes.class).some((token) => names.has(token));
}
