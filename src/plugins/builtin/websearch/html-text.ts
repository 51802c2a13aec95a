/**
 * Text out of HTML: character references decoded, whitespace collapsed. Just enough HTML
 * for a search results page: the markup itself is read by results-page.ts.
 */

/**
 * The named references a results page uses, and those of the characters CSS syntax needs (an
 * inline style may spell `display:none` with them); any other name is left as written.
 */
const NAMED: Readonly<Record<string, string>> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: "\u00a0",
  hellip: "\u2026",
  mdash: "\u2014",
  ndash: "\u2013",
  lsquo: "\u2018",
  rsquo: "\u2019",
  ldquo: "\u201c",
  rdquo: "\u201d",
  laquo: "\u00ab",
  raquo: "\u00bb",
  middot: "\u00b7",
  bull: "\u2022",
  copy: "\u00a9",
  reg: "\u00ae",
  trade: "\u2122",
  times: "\u00d7",
  euro: "\u20ac",
  colon: ":",
  semi: ";",
  excl: "!",
  sol: "/",
  bsol: "\\",
  ast: "*",
  midast: "*",
  Tab: "\t",
  NewLine: "\n",
};

// A named reference needs its semicolon: `?a=1&copy=2` in a URL stays as it is. Leading zeros are allowed.
// Digits run as long as they go (a browser reads `&#123456789;` whole, as one U+FFFD).
const REFERENCE = /&(?:#([0-9]+);?|#[xX]([0-9A-Fa-f]+);?|([A-Za-z][A-Za-z0-9]{1,31});)/g;

/** What HTML makes of references to 0x80-0x9F: the Windows-1252 characters (`&#150;` is an en dash). */
const WINDOWS_1252: Readonly<Record<number, number>> = {
  0x80: 0x20ac, 0x82: 0x201a, 0x83: 0x0192, 0x84: 0x201e, 0x85: 0x2026, 0x86: 0x2020, 0x87: 0x2021, 0x88: 0x02c6,
  0x89: 0x2030, 0x8a: 0x0160, 0x8b: 0x2039, 0x8c: 0x0152, 0x8e: 0x017d, 0x91: 0x2018, 0x92: 0x2019, 0x93: 0x201c,
  0x94: 0x201d, 0x95: 0x2022, 0x96: 0x2013, 0x97: 0x2014, 0x98: 0x02dc, 0x99: 0x2122, 0x9a: 0x0161, 0x9b: 0x203a,
  0x9c: 0x0153, 0x9e: 0x017e, 0x9f: 0x0178,
};

/** Decodes character references; one that names no character becomes U+FFFD, as a browser shows it. */
export function decodeEntities(text: string): string {
  if (!text.includes("&")) return text;
  return text.replace(REFERENCE, (whole, decimal: string | undefined, hex: string | undefined, name: string | undefined) => {
    // Own entries only: `&constructor;` is no reference, not Object.prototype's member.
    if (name !== undefined) return Object.hasOwn(NAMED, name) ? (NAMED[name] as string) : whole;
    const code = decimal !== undefined ? Number.parseInt(decimal, 10) : Number.parseInt(hex as string, 16);
    if (code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return "\ufffd";
    return String.fromCodePoint(WINDOWS_1252[code] ?? code);
  });
}

/** Runs of whitespace (no-break spaces included) as one space, ends trimmed. */
export function collapseWhitespace(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

// Controls, format characters (zero-width, bidi, tags), private-use and unassigned code points,
// variation selectors: a reader sees none of them, a model reads them all.
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\u{FE00}-\u{FE0F}\u{E0100}-\u{E01EF}]/gu;

/** Text as a person sees it: whitespace collapsed, then what cannot be seen taken out. */
export function visibleText(text: string): string {
  return collapseWhitespace(text).replace(INVISIBLE, "").replace(/ {2,}/g, " ").trim();
}

/** At most `max` characters, cut at a character boundary and marked with an ellipsis. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  // Not between the two halves of a surrogate pair.
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}\u2026`;
}
