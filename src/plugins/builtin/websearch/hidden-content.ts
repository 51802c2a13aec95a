/**
 * What of a page a browser does not show, followed tag by tag: an element marked `hidden` or
 * styled `display: none` inline, and svg and math whole. The scan reads no text while inside one.
 *
 * svg and math are dropped whole, not only their parts that draw no text: what a reader sees
 * there turns on geometry and paint a tag scanner cannot judge (svg draws text only in <text>,
 * which may sit off its canvas or unpainted, and its <title> is a tooltip; MathML has
 * <mphantom> and annotations). The cost is an icon's label or a formula in a title.
 *
 * A hidden element ends at its own end tag, or where a browser closes it left open: see
 * OpenElement and Region.endsAt. Where that is not known, it hides more rather than less.
 * Constant work per tag; one region at a time (what is inside one is hidden with it).
 */
import type { Attributes, Reading, Tag } from "./html-tags.js";
import { decodeEntities } from "./html-text.js";
import { OpenElement } from "./open-element.js";

/** Elements without content or end tag: marked hidden, they hide nothing after them. */
const VOID: ReadonlySet<string> = new Set(["area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta", "param", "source", "track", "wbr"]);
/**
 * Elements that the end of a link they were opened in closes, left open (HTML's adoption agency
 * closes what is not "special"). A block, such as a div, outlives the link in a browser: it is
 * not here, and neither is anything unknown, which then hides on (the safe mistake).
 */
const PHRASING: ReadonlySet<string> = new Set([
  "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em", "font", "i", "ins", "kbd", "label", "mark",
  "nobr", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "time", "tt", "u", "var",
]);
/** Start tags that close an open paragraph. */
const CLOSES_P: ReadonlySet<string> = new Set([
  "address", "article", "aside", "blockquote", "center", "dd", "details", "dialog", "dir", "div", "dl", "dt", "fieldset",
  "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "li", "listing",
  "main", "menu", "nav", "ol", "p", "plaintext", "pre", "search", "section", "summary", "table", "ul", "xmp",
]);
/** HTML start tags that end svg or math read as foreign content: the parser closes them to read HTML again. */
const BREAKOUT: ReadonlySet<string> = new Set([
  "b", "big", "blockquote", "body", "br", "center", "code", "dd", "div", "dl", "dt", "em", "embed", "h1", "h2", "h3", "h4",
  "h5", "h6", "head", "hr", "i", "img", "li", "listing", "menu", "meta", "nobr", "ol", "p", "pre", "ruby", "s", "small",
  "span", "strong", "strike", "sub", "sup", "table", "tt", "u", "ul", "var",
]);
/**
 * svg and math elements whose content is read as HTML (integration points), where an HTML tag
 * does not end the svg or math. annotation-xml is one only with an HTML encoding: counted always,
 * it at worst keeps an svg hidden longer.
 */
const INTEGRATION: ReadonlySet<string> = new Set(["foreignobject", "desc", "title", "mi", "mo", "mn", "ms", "mtext", "annotation-xml"]);

export class HiddenContent {
  private region: Region | undefined;

  /** Whether the text up to the next tag is shown. */
  get shown(): boolean {
    return this.region === undefined;
  }

  /** How the markup up to the next tag is to be read. */
  get reading(): Reading {
    return this.region?.reading ?? "page";
  }

  /**
   * Takes in the next tag (`tables` as OpenElement counts them, `inLink` whether a link is open
   * at it). Returns whether it is a tag of svg or math that leaves them open: their element, not
   * one of the page's (an `<a>` there is no link).
   */
  see(tag: Tag, tables: number, inLink: boolean): boolean {
    if (this.region !== undefined) {
      const foreign = this.region.reading === "foreign";
      if (!this.region.endsAt(tag, tables)) return foreign;
      this.region = undefined;
    }
    if (tag.closing) return false;
    const foreign = tag.name === "svg" || tag.name === "math";
    if (foreign ? !tag.selfClosing : !VOID.has(tag.name) && hides(tag.attributes)) this.region = new Region(tag.name, tables, foreign, inLink);
    return false;
  }
}

function hides(attributes: Attributes): boolean {
  // A browser decodes character references in an attribute's value before CSS reads it.
  return "hidden" in attributes || (attributes.style !== undefined && displaysNone(decodeEntities(attributes.style)));
}

/** A hidden element the scan is in. */
class Region extends OpenElement {
  /** (svg, math) Integration points open in it, and svg links. */
  private integration = 0;
  private links = 0;

  constructor(
    name: string,
    tables: number,
    private readonly foreign: boolean,
    /** It was opened in a link. */
    private readonly inLink: boolean,
  ) {
    super(name, tables);
  }

  get reading(): Reading {
    return this.foreign && this.integration === 0 ? "foreign" : "hidden";
  }

  /**
   * Besides its end tag and the table tags that close it: an HTML tag ends svg or math where it
   * is foreign content, and so does the end of the link it was opened in.
   */
  override endsAt(tag: Tag, tables: number): boolean {
    const { name, closing } = tag;
    if (this.foreign) {
      if (this.integration === 0 && breaksOut(tag)) return true;
      if (INTEGRATION.has(name)) this.integration = counted(this.integration, tag);
      if (name === "a") {
        if (closing && this.links === 0) return this.inLink;
        this.links = counted(this.links, tag);
      }
      // Any other start tag opens an element of svg or math (a <td> too); `/>` closes it at once.
      if (!closing && (name !== this.name || tag.selfClosing)) return false;
    } else if (tables === this.tables && closedAt(this.name, tag, this.inLink)) {
      return true;
    }
    return super.endsAt(tag, tables);
  }
}

/**
 * Whether a browser closes an HTML element named `open`, left open, at `tag` in the same table
 * (short of its own end tag and of table tags): a new link closes a link, the end of a link or
 * a new one what phrasing it holds (taken to sit in the link directly: a block between them
 * would keep it open), a block a paragraph.
 */
function closedAt(open: string, tag: Tag, inLink: boolean): boolean {
  if (tag.name === "a") return open === "a" ? !tag.closing : inLink && PHRASING.has(open);
  return open === "p" && !tag.closing && CLOSES_P.has(tag.name);
}

/** Whether `tag` ends svg or math where they are read as foreign content. */
function breaksOut(tag: Tag): boolean {
  const { name, attributes } = tag;
  if (!tag.closing) return BREAKOUT.has(name) || (name === "font" && ("color" in attributes || "face" in attributes || "size" in attributes));
  // `</br>` and `</p>` do, as the parser says. The other names are HTML's alone: their end tag
  // closes an element of that name around the svg, and the svg with it. Taken as open, which a
  // stray end tag in a crafted page makes the wrong guess; void elements, body and head have
  // none that closes anything.
  return name === "br" || (BREAKOUT.has(name) && !VOID.has(name) && name !== "body" && name !== "head");
}

/** Open elements after `tag`, of a kind it opens or closes (`/>` closes at once: svg, math). */
function counted(open: number, tag: Tag): number {
  if (tag.closing) return Math.max(0, open - 1);
  return tag.selfClosing ? open : open + 1;
}

const IMPORTANT = /!\s*important$/;

/**
 * Whether an inline style sets `display: none` (any case, any spacing, comments where spaces
 * go, CSS escapes: `n\one` and `\6e one` are `none` to a browser). Its declarations are split as
 * CSS splits them: a `;` or `/*` in a quoted string or escaped neither ends one nor starts a
 * comment. Any such declaration counts, even where a later `display` wins in a browser: taking
 * too much for hidden is the safe mistake. One pass.
 */
export function displaysNone(style: string): boolean {
  if (!/display/i.test(style) && !style.includes("\\")) return false;
  let declaration = "";
  for (let i = 0; i < style.length; i++) {
    const c = style[i] as string;
    if (c === ";") {
      if (isDisplayNone(declaration)) return true;
      declaration = "";
    } else if (c === "\\") {
      // An escape: the character after it is part of a name or value, never a separator.
      declaration += style.slice(i, i + 2);
      i++;
    } else if (c === "/" && style[i + 1] === "*") {
      const close = style.indexOf("*/", i + 2);
      i = close === -1 ? style.length : close + 1;
      declaration += " ";
    } else if (c === '"' || c === "'") {
      // A string ends at its quote, a line's end or the style's; a backslash escapes what follows.
      let j = i + 1;
      while (j < style.length && style[j] !== c && style[j] !== "\n") j += style[j] === "\\" ? 2 : 1;
      declaration += style.slice(i, j + 1);
      i = j;
    } else {
      declaration += c;
    }
  }
  return isDisplayNone(declaration);
}

function isDisplayNone(escaped: string): boolean {
  const declaration = unescapeCss(escaped);
  const colon = declaration.indexOf(":");
  if (colon === -1 || declaration.slice(0, colon).trim().toLowerCase() !== "display") return false;
  return declaration.slice(colon + 1).trim().toLowerCase().replace(IMPORTANT, "").trim() === "none";
}

// A hex escape takes one whitespace after it (CRLF counts as one); any other escaped character stands for itself.
const CSS_ESCAPE = /\\(?:([0-9a-fA-F]{1,6})(?:\r\n|[ \t\n\r\f])?|([\s\S])|$)/g;

/** The text CSS reads from `text`: escapes replaced by their characters (one naming no character by U+FFFD). */
function unescapeCss(text: string): string {
  if (!text.includes("\\")) return text;
  return text.replace(CSS_ESCAPE, (_whole, hex: string | undefined, other: string | undefined) => {
    if (hex === undefined) return other ?? "\ufffd";
    const code = Number.parseInt(hex, 16);
    return code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff) ? "\ufffd" : String.fromCodePoint(code);
  });
}
