/**
 * The deny rules' verdict on every entry of a directory tree, fast enough to walk a project
 * before each sandboxed program runs. A walk goes top down and stops at what a rule denies,
 * so an entry's ancestors are already judged clean: only the entry's own path is tested, and
 * only against the rules that could match it. A rule whose plain names (`names`) are not all
 * among the path's components cannot match, so each directory carries the rules its path has
 * "armed", and a name arms the rules waiting for it. Rules without plain names (`**\/*.pem`)
 * are tested everywhere. A path past ASCII is tested against every rule, as the guard tests it:
 * in every reading when it is past ASCII in NFC, and the first time so with its ancestors (by the
 * guard itself), whose readings it had not been tested in. Pure: the walk's reads are the caller's.
 */
import { sandboxRuleFor, type CompiledDenyRule, type CompiledPathPolicy } from "./path-guard.js";
import { foldName } from "../util/text.js";

export type ScanVerdict = "denied" | "write-denied" | undefined;

/** A directory of the walk whose own path (and its ancestors') was judged not denied. */
export interface ScanDir {
  /** Its absolute path, as the disk spells it. */
  readonly path: string;
  /** Whether the path is all ASCII (else every rule is tested, not only the armed ones). */
  readonly ascii: boolean;
  /**
   * Whether the path is past ASCII in NFC, as the guard reads it (the Kelvin sign is K in NFC):
   * then it was judged with its ancestors in every reading (folded, Unicode mode), so an entry
   * below it is tested in every reading by its own path only.
   */
  readonly readings: boolean;
  /** Its components, lower case (ASCII paths only). */
  readonly components: ReadonlySet<string>;
  /** The rules whose names are all among `components`. */
  readonly armed: ArmedRules;
}

interface ArmedRules {
  readonly deny: readonly CompiledDenyRule[];
  readonly writeDeny: readonly CompiledDenyRule[];
}

/** The rules of one kind: those without names, and the others by each of their names. */
interface RuleIndex {
  readonly all: readonly CompiledDenyRule[];
  readonly unnamed: readonly CompiledDenyRule[];
  readonly byName: ReadonlyMap<string, readonly CompiledDenyRule[]>;
}

// eslint-disable-next-line no-control-regex -- the ASCII range, controls included
const ALL_ASCII = /^[\x00-\x7f]*$/;
// eslint-disable-next-line no-control-regex -- the ASCII range, controls included
const NOT_ASCII = /[^\x00-\x7f]/;

export class DenyScanner {
  private readonly deny: RuleIndex;
  private readonly writeDeny: RuleIndex;

  constructor(private readonly compiled: CompiledPathPolicy) {
    this.deny = indexRules(compiled.deny);
    this.writeDeny = indexRules(compiled.writeDeny);
  }

  /** The state of a directory the caller has judged (with `sandboxRuleFor`, ancestors included). */
  root(realPath: string): ScanDir {
    const ascii = ALL_ASCII.test(realPath);
    const components = new Set(ascii ? realPath.split("/").filter((part) => part !== "").map((part) => part.toLowerCase()) : []);
    const armed = (index: RuleIndex): CompiledDenyRule[] =>
      index.all.filter((rule) => rule.names.length > 0 && rule.names.every((name) => components.has(name)));
    const readings = !ascii && NOT_ASCII.test(realPath.normalize("NFC"));
    return { path: realPath, ascii, readings, components, armed: { deny: armed(this.deny), writeDeny: armed(this.writeDeny) } };
  }

  /**
   * The verdict on `name` inside `dir`: denied_paths first, then write_denied_paths unless
   * `withWriteDeny` is false (inside a directory already read-only, only what must be hidden counts).
   */
  judge(dir: ScanDir, name: string, withWriteDeny = true): ScanVerdict {
    const full = childPath(dir.path, name);
    if (!dir.ascii || !ALL_ASCII.test(name)) {
      const nfc = full.normalize("NFC");
      const readings = dir.readings || NOT_ASCII.test(nfc);
      if (readings && !dir.readings) {
        // The first name past ASCII (in NFC) on this path: the guard's own judgement, ancestors
        // included. A path past ASCII is read in more ways (folded, Unicode mode), and those
        // readings of an ancestor, tested as written only so far, may match where its own did not.
        const verdict = sandboxRuleFor(this.compiled, full);
        return verdict === "write-denied" && !withWriteDeny ? undefined : verdict;
      }
      // The ancestors were tested in the readings this path is (every one, or as written in NFC):
      // only its own path is left, against every rule (a folded name may stand for a plain one).
      const relative = nfc.slice(1);
      const folded = readings ? foldName(nfc).slice(1) : undefined;
      if (this.compiled.deny.some((rule) => rule.test(relative, folded))) return "denied";
      if (withWriteDeny && this.compiled.writeDeny.some((rule) => rule.test(relative, folded))) return "write-denied";
      return undefined;
    }
    const relative = full.slice(1);
    const lower = name.toLowerCase();
    if (matchesAny(this.deny, dir.armed.deny, dir.components, lower, relative)) return "denied";
    if (withWriteDeny && matchesAny(this.writeDeny, dir.armed.writeDeny, dir.components, lower, relative)) return "write-denied";
    return undefined;
  }

  /** The state of `name` inside `dir`, a directory the walk goes into (judged not denied). */
  descend(dir: ScanDir, name: string): ScanDir {
    const full = childPath(dir.path, name);
    if (!dir.ascii || !ALL_ASCII.test(name)) {
      return { path: full, ascii: false, readings: dir.readings || NOT_ASCII.test(name.normalize("NFC")), components: dir.components, armed: dir.armed };
    }
    const lower = name.toLowerCase();
    const components = new Set(dir.components).add(lower);
    return {
      path: full,
      ascii: true,
      readings: false,
      components,
      armed: { deny: arm(this.deny, dir.armed.deny, components, lower), writeDeny: arm(this.writeDeny, dir.armed.writeDeny, components, lower) },
    };
  }
}

function indexRules(rules: readonly CompiledDenyRule[]): RuleIndex {
  const byName = new Map<string, CompiledDenyRule[]>();
  const unnamed: CompiledDenyRule[] = [];
  for (const rule of rules) {
    if (rule.names.length === 0) unnamed.push(rule);
    for (const name of rule.names) {
      const list = byName.get(name);
      if (list === undefined) byName.set(name, [rule]);
      else list.push(rule);
    }
  }
  return { all: rules, unnamed, byName };
}

/** Whether a rule that could match `relative` does: unnamed, armed above, or armed by `lower`. */
function matchesAny(index: RuleIndex, armed: readonly CompiledDenyRule[], components: ReadonlySet<string>, lower: string, relative: string): boolean {
  for (const rule of index.unnamed) if (rule.test(relative, undefined)) return true;
  for (const rule of armed) if (rule.test(relative, undefined)) return true;
  const waiting = index.byName.get(lower);
  if (waiting === undefined) return false;
  for (const rule of waiting) {
    if (armed.includes(rule)) continue;
    if (rule.names.every((name) => name === lower || components.has(name)) && rule.test(relative, undefined)) return true;
  }
  return false;
}

/** `armed` and the rules `lower` completes, for a directory whose components (its own name included) are `components`. */
function arm(index: RuleIndex, armed: readonly CompiledDenyRule[], components: ReadonlySet<string>, lower: string): readonly CompiledDenyRule[] {
  const waiting = index.byName.get(lower);
  if (waiting === undefined) return armed;
  const added = waiting.filter((rule) => !armed.includes(rule) && rule.names.every((name) => components.has(name)));
  return added.length === 0 ? armed : [...armed, ...added];
}

function childPath(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}
