/**
 * Where an element the scan is inside ends, found without building the page's tree: at its own
 * end tag (elements of its name inside it counted), or where a table tag closes it as a browser
 * does (a new row closes the open row and all it holds, `</table>` all of its table). Tables
 * opened inside it are told apart by a count, so their rows are not taken for its own and its
 * end tag does not reach out of them (in HTML an end tag never closes past a table). Constant
 * work per tag.
 */
import type { Tag } from "./html-tags.js";

/**
 * How far a table tag reaches: a start tag closes the open elements of its level and below (a
 * new cell the open cell, a new row the open row), an end tag those below it (`</tr>` the row's
 * cells). What a cell holds is level 0.
 */
const TABLE_LEVEL: Readonly<Record<string, number>> = { td: 1, th: 1, tr: 2, tbody: 3, thead: 3, tfoot: 3, table: 4 };

/** Whether `tag` closes an element named `open` that it finds open in its own table. */
export function closesInTable(open: string, tag: Tag): boolean {
  const level = TABLE_LEVEL[tag.name];
  // A start tag <table> opens a table inside; it closes nothing.
  if (level === undefined || (!tag.closing && tag.name === "table")) return false;
  const own = TABLE_LEVEL[open] ?? 0;
  return tag.closing ? level > own : level >= own;
}

/**
 * Tables open, counted tag by tag: a start tag `<table>` is counted before the tag is looked at,
 * its end tag after, so the tags of a table (itself included) see one more than those around it.
 */
export class TableCount {
  open = 0;

  before(tag: Tag): void {
    if (tag.name === "table" && !tag.closing) this.open++;
  }

  after(tag: Tag): void {
    if (tag.name === "table" && tag.closing && this.open > 0) this.open--;
  }
}

/** An element the scan is inside, until a tag ends it. */
export class OpenElement {
  /** Elements of its name open in it, itself included. */
  private depth = 1;

  /** `tables`: the tables open at its start tag, counted by a TableCount. */
  constructor(
    readonly name: string,
    protected readonly tables: number,
  ) {}

  /** Whether `tag` ends it; `tables`: the tables open at `tag`, counted by the same TableCount. */
  endsAt(tag: Tag, tables: number): boolean {
    // In a table opened inside it, the tags are that table's; an end tag does not reach out of one.
    if (tables !== this.tables) return false;
    // Table tags close what a cell holds only in a table: elsewhere a browser ignores them.
    if ((this.tables > 0 || this.name in TABLE_LEVEL) && closesInTable(this.name, tag)) return true;
    if (tag.name !== this.name) return false;
    if (!tag.closing) this.depth++;
    return tag.closing && --this.depth === 0;
  }
}
