/**
 * HTML read tag by tag, as the tokenizer of the HTML standard reads it: a start or end tag
 * with its attributes, a comment or other markup that is not text, and the content of a
 * raw-text element (a script, a style) skipped whole. Linear in the page whatever it holds.
 */

export type Attributes = Readonly<Record<string, string>>;

/** Elements whose content is not text of the page. */
const RAW_TEXT: ReadonlySet<string> = new Set(["script", "style", "template", "textarea", "noscript", "title", "noembed", "noframes", "iframe", "xmp"]);

/**
 * How the markup ahead is read. `page`: as HTML. `foreign`: inside svg or math, where no element
 * is raw text and `<![CDATA[` opens a section that runs to `]]>`. `hidden`: inside content a
 * browser does not show, where only the end of that content matters: HTML, except that a CDATA
 * section runs to `]]>` (in svg it does; elsewhere reading on too far only hides more, the
 * safe mistake, where stopping early would show what svg hides).
 */
export type Reading = "page" | "hidden" | "foreign";

export interface Tag {
  start: number;
  /** Just past the tag's `>` (for a raw-text element, at its end tag: its content is skipped). */
  end: number;
  /** Lower-case; `#comment`, `#markup` (doctype, processing instruction, bogus comment) or `#rest` (an unclosed tag to the page's end). */
  name: string;
  closing: boolean;
  /** Written `<name .../>`: only svg and math elements end there; in HTML the flag is ignored. */
  selfClosing: boolean;
  attributes: Attributes;
}

/**
 * The next tag at or after `from`. Linear in the page: a tag, comment or quoted value left
 * open runs to the end of the page, where the scan stops (a regex would retry from every later `<`).
 */
export function nextTag(html: string, from: number, reading: Reading = "page"): Tag | undefined {
  for (let at = html.indexOf("<", from); at !== -1; at = html.indexOf("<", at + 1)) {
    if (html.startsWith("<!--", at)) {
      return { start: at, end: commentEnd(html, at + 4), name: "#comment", closing: false, selfClosing: false, attributes: NO_ATTRIBUTES };
    }
    if (reading !== "page" && html.startsWith("<![CDATA[", at)) {
      const close = html.indexOf("]]>", at + 9);
      return { start: at, end: close === -1 ? html.length : close + 3, name: "#markup", closing: false, selfClosing: false, attributes: NO_ATTRIBUTES };
    }
    const closing = html[at + 1] === "/";
    const nameStart = closing ? at + 2 : at + 1;
    // `<!`, `<?`, and `</` not followed by a letter: a bogus comment to the next `>`, as a browser reads it.
    if (html[at + 1] === "!" || html[at + 1] === "?" || (closing && !isLetter(html.charCodeAt(nameStart)))) {
      const close = html.indexOf(">", at + 2);
      return { start: at, end: close === -1 ? html.length : close + 1, name: "#markup", closing: false, selfClosing: false, attributes: NO_ATTRIBUTES };
    }
    // `<` not followed by a letter is text (`a < b`).
    if (!isLetter(html.charCodeAt(nameStart))) continue;
    let nameEnd = nameStart;
    while (nameEnd < html.length && !ENDS_NAME.has(html.charCodeAt(nameEnd))) nameEnd++;
    const read = readAttributes(html, nameEnd);
    if (read === undefined) return { start: at, end: html.length, name: "#rest", closing: false, selfClosing: false, attributes: NO_ATTRIBUTES };
    // Lower-cased alone: the whole page lower-cased might change length ("İ" grows), and positions with it.
    const name = html.slice(nameStart, nameEnd).toLowerCase();
    const tag: Tag = { start: at, end: read.end + 1, name, closing, selfClosing: read.selfClosing, attributes: closing ? NO_ATTRIBUTES : read.attributes };
    if (closing || reading === "foreign") return tag;
    if (name === "script") {
      tag.end = scriptEnd(html, tag.end);
    } else if (RAW_TEXT.has(name)) {
      // What a style holds is not markup of the page; its end tag (the name whole: not `</titlex`) is read next.
      const endTag = new RegExp(`</${name}(?=[\\t\\n\\f\\r />])`, "gi");
      endTag.lastIndex = tag.end;
      tag.end = endTag.exec(html)?.index ?? html.length;
    }
    return tag;
  }
  return undefined;
}

/** What each script data state of the tokenizer looks for: a tag name counts whole (`<scriptx` is text). */
const SCRIPT_DATA = /<!--|<\/script(?=[\t\n\f\r />])/gi;
const SCRIPT_ESCAPED = /-->|<\/?script(?=[\t\n\f\r />])/gi;
const SCRIPT_DOUBLE_ESCAPED = /-->|<\/script(?=[\t\n\f\r />])/gi;

/**
 * Where the text of a script that starts at `from` ends: at its end tag, as the tokenizer's
 * script data states find it. After `<!--` a script is "escaped" until `-->`; there a `<script`
 * makes it "double escaped", where `</script>` only goes back to escaped: a browser keeps
 * reading that script, so the markup after such an end tag is still script, not the page.
 * One pass: each state searches on from where the last one stopped.
 */
function scriptEnd(html: string, from: number): number {
  let state: "data" | "escaped" | "double escaped" = "data";
  let at = from;
  for (;;) {
    const pattern = state === "data" ? SCRIPT_DATA : state === "escaped" ? SCRIPT_ESCAPED : SCRIPT_DOUBLE_ESCAPED;
    pattern.lastIndex = at;
    const found = pattern.exec(html);
    if (found === null) return html.length;
    const [text] = found;
    if (text === "<!--") {
      // Its own dashes count towards `-->`: `<!-->` escapes nothing.
      state = "escaped";
      at = found.index + 2;
    } else if (text === "-->") {
      state = "data";
      at = found.index + 3;
    } else if (text[1] === "/" && state !== "double escaped") {
      return found.index;
    } else {
      state = state === "escaped" ? "double escaped" : "escaped";
      at = found.index + text.length;
    }
  }
}

/** `-->`, or `--!>` (an "incorrectly closed comment", which ends it all the same). */
const COMMENT_CLOSE = /--!?>/g;

/**
 * Just past the end of a comment whose text starts at `from`, as the tokenizer's comment states
 * end it: `<!-->` and `<!--->` at once (an "abruptly closed empty comment"), else the first `-->`
 * or `--!>` (with more dashes before it too), else the end of the page.
 */
function commentEnd(html: string, from: number): number {
  if (html.startsWith(">", from)) return from + 1;
  if (html.startsWith("->", from)) return from + 2;
  COMMENT_CLOSE.lastIndex = from;
  const close = COMMENT_CLOSE.exec(html);
  return close === null ? html.length : close.index + close[0].length;
}

const NO_ATTRIBUTES: Attributes = Object.freeze(Object.create(null) as Record<string, string>);
/** What ends a tag name, as HTML reads it: whitespace, `/` and `>`. */
const ENDS_NAME: ReadonlySet<number> = new Set([0x09, 0x0a, 0x0c, 0x0d, 0x20, 0x2f, 0x3e]);
const HTML_SPACE: ReadonlySet<number> = new Set([0x09, 0x0a, 0x0c, 0x0d, 0x20]);

/**
 * The attributes of a tag whose name ends at `from`, and the index of its closing `>`, read
 * by HTML's attribute states (a quote opens a value only where a value begins, right after
 * `=` and spaces; names and unquoted values hold any other character), and whether a `/` that
 * is not part of a name or value comes right before that `>`. Undefined when the tag or a quoted
 * value never ends. One pass, each character looked at once.
 */
function readAttributes(html: string, from: number): { end: number; attributes: Attributes; selfClosing: boolean } | undefined {
  const attributes = Object.create(null) as Record<string, string>;
  const add = (name: string, value: string): void => {
    const key = name.toLowerCase();
    // The first of a repeated attribute wins, as in a browser.
    if (!(key in attributes)) attributes[key] = value;
  };
  let i = from;
  for (;;) {
    // Before a name: spaces and slashes.
    const skipped = i;
    while (i < html.length && (HTML_SPACE.has(html.charCodeAt(i)) || html.charCodeAt(i) === 0x2f)) i++;
    if (i >= html.length) return undefined;
    if (html.charCodeAt(i) === 0x3e) return { end: i, attributes, selfClosing: i > skipped && html.charCodeAt(i - 1) === 0x2f };
    // The name: a leading `=` belongs to it; then anything but space, `/`, `>` and `=`.
    const nameStart = i++;
    while (i < html.length && !ENDS_NAME.has(html.charCodeAt(i)) && html.charCodeAt(i) !== 0x3d) i++;
    const name = html.slice(nameStart, i);
    while (i < html.length && HTML_SPACE.has(html.charCodeAt(i))) i++;
    if (html.charCodeAt(i) !== 0x3d) {
      add(name, "");
      continue;
    }
    i++;
    while (i < html.length && HTML_SPACE.has(html.charCodeAt(i))) i++;
    if (i >= html.length) return undefined;
    const quote = html.charCodeAt(i);
    if (quote === 0x22 || quote === 0x27) {
      const close = html.indexOf(html[i] as string, i + 1);
      if (close === -1) return undefined;
      add(name, html.slice(i + 1, close));
      i = close + 1;
    } else if (quote === 0x3e) {
      add(name, "");
    } else {
      const valueStart = i;
      while (i < html.length && !HTML_SPACE.has(html.charCodeAt(i)) && html.charCodeAt(i) !== 0x3e) i++;
      add(name, html.slice(valueStart, i));
    }
  }
}

function isLetter(code: number): boolean {
  return (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a);
}
