/**
 * One function per tool: parse the arguments, settle the project through the
 * guarded filesystem (the only awaits), then do all database work for the call in
 * one transaction. Every refusal is a ToolError with a stable code.
 */
import { ToolError, type JsonObject, type ToolContext, type ToolOutcome } from "../../contract.js";
import { parseAdd, parseClose, parseGet, parseInit, parseList, parseSearch, parseUpdate, type ListInput, type RelatedInput } from "./args.js";
import { CursorError, decodeCursor, encodeCursor, type CursorKeys } from "./cursor.js";
import { SearchQueryError, buildFtsQuery } from "./fts-query.js";
import { formatBugId, type BugRef } from "./ids.js";
import { priorityOfRank, type Relationship } from "./model.js";
import { resolveProject, type ResolvedProject } from "./project.js";
import { rowKeys, type BugRow, type BugStore, type BugView, type ChangesView, type PageQuery, type ProjectRow } from "./store.js";
import { isEmptyPlan, planUpdate, type UpdatePlan } from "./update-plan.js";

/** Gives the store for this call, opening the database on first use. */
export type StoreProvider = (ctx: ToolContext) => BugStore;

/** Views hold only strings, numbers, booleans, arrays and plain objects. */
function json(value: object): JsonObject {
  return value as JsonObject;
}

function ok(value: object): ToolOutcome {
  return { structuredContent: json(value) };
}

// --- shared lookups -------------------------------------------------------------

function register(store: BugStore, project: ResolvedProject): { project: ProjectRow; created: boolean } {
  try {
    return store.registerProject(project.path, project.name, project.projectId);
  } catch (error) {
    const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
    if (code === "SQLITE_CONSTRAINT_UNIQUE") {
      // Two different directories with the same name and the same 32-bit hash prefix.
      throw new ToolError(
        `project id ${project.projectId} is already used by another directory; this directory cannot be tracked under the seed's id scheme`,
        "PROJECT_ID_CONFLICT",
      );
    }
    throw error;
  }
}

function requireProject(store: BugStore, project: ResolvedProject): ProjectRow {
  const row = store.findProjectByPath(project.path);
  if (row === undefined) {
    throw new ToolError(
      `the project ${project.path} has no bugs tracked yet (it would be ${project.projectId}); call init_bugtracker or add_bug for it first`,
      "PROJECT_UNKNOWN",
    );
  }
  return row;
}

function refLabel(ref: BugRef): string {
  return ref.kind === "number" ? formatBugId(ref.number) : ref.uid;
}

function findBug(store: BugStore, project: ProjectRow, ref: BugRef): BugRow | undefined {
  return ref.kind === "number" ? store.findByNumber(project.id, ref.number) : store.findByUid(project.id, ref.uid);
}

function requireBug(store: BugStore, project: ProjectRow, ref: BugRef): BugRow {
  const bug = findBug(store, project, ref);
  if (bug === undefined) throw new ToolError(`bug ${refLabel(ref)} not found in project ${project.project_id}`, "BUG_NOT_FOUND");
  return bug;
}

function viewOne(store: BugStore, project: ProjectRow, row: BugRow, history: boolean): BugView {
  const [view] = store.views([row], new Map([[project.id, project]]), { history, projectPath: false });
  if (view === undefined) throw new Error("a bug view went missing");
  return view;
}

async function projectOf(ctx: ToolContext, given: string | undefined): Promise<ResolvedProject> {
  const project = await resolveProject(ctx.fs, ctx.session, given);
  // The path check was the last await: stop here if the call was cancelled meanwhile.
  ctx.signal.throwIfAborted();
  return project;
}

// --- tools ----------------------------------------------------------------------

export async function initBugtracker(args: JsonObject, ctx: ToolContext, storeFor: StoreProvider): Promise<ToolOutcome> {
  const input = parseInit(args);
  const resolved = await projectOf(ctx, input.projectPath);
  const store = storeFor(ctx);
  const { project, created } = store.write(() => register(store, resolved));
  return ok({
    status: "ready",
    project_id: project.project_id,
    project_path: project.path,
    created,
    bug_count: project.next_number - 1,
    next_bug_id: formatBugId(project.next_number),
  });
}

export async function addBug(args: JsonObject, ctx: ToolContext, storeFor: StoreProvider): Promise<ToolOutcome> {
  const input = parseAdd(args);
  const resolved = await projectOf(ctx, input.projectPath);
  const store = storeFor(ctx);
  const view = store.write(() => {
    const { project } = register(store, resolved);
    const row = store.insertBug(project, input);
    return viewOne(store, project, row, false);
  });
  return ok({ message: `Created bug: ${view.bug_id}`, bug: view });
}

export async function getBug(args: JsonObject, ctx: ToolContext, storeFor: StoreProvider): Promise<ToolOutcome> {
  const input = parseGet(args);
  const resolved = await projectOf(ctx, input.projectPath);
  const store = storeFor(ctx);
  const view = store.read(() => {
    const project = requireProject(store, resolved);
    return viewOne(store, project, requireBug(store, project, input.ref), input.includeHistory);
  });
  return ok({ bug: view });
}

function resolveRelated(store: BugStore, project: ProjectRow, bug: BugRow, related: readonly RelatedInput[]) {
  const seen = new Set<number>();
  return related.map((link) => {
    const other = findBug(store, project, link.ref);
    if (other === undefined) {
      throw new ToolError(`related bug ${refLabel(link.ref)} not found in project ${project.project_id}; links stay within one project`, "BUG_NOT_FOUND");
    }
    if (other.id === bug.id) throw new ToolError(`${formatBugId(bug.number)} cannot be related to itself`, "INVALID_ARGUMENT");
    if (seen.has(other.id)) throw new ToolError(`${formatBugId(other.number)} appears more than once in related_bugs`, "INVALID_ARGUMENT");
    seen.add(other.id);
    return { other: other.id, relationship: link.relationship };
  });
}

function stateOf(store: BugStore, bug: BugRow) {
  return {
    label: formatBugId(bug.number),
    title: bug.title,
    description: bug.description,
    status: bug.status,
    priority: priorityOfRank(bug.priority),
    tags: store.tagsOf(bug.id),
    related: store.relatedOf(bug.id),
  };
}

function changesView(store: BugStore, plan: UpdatePlan): ChangesView {
  const changes: ChangesView = {};
  if (plan.title) changes.title = { ...plan.title };
  if (plan.description) changes.description = { ...plan.description };
  if (plan.status) changes.status = { ...plan.status };
  if (plan.priority) changes.priority = { ...plan.priority };
  if (plan.tagsAdded.length > 0 || plan.tagsRemoved.length > 0) changes.tags = { added: plan.tagsAdded, removed: plan.tagsRemoved };
  if (plan.related.length > 0) {
    changes.related_bugs = plan.related.map((change) => {
      const other = store.bugById(change.other);
      const item: { bug_id: string; from?: Relationship; to?: Relationship } = { bug_id: other ? formatBugId(other.number) : "unknown" };
      if (change.from) item.from = change.from;
      if (change.to) item.to = change.to;
      return item;
    });
  }
  return changes;
}

export async function updateBug(args: JsonObject, ctx: ToolContext, storeFor: StoreProvider): Promise<ToolOutcome> {
  const input = parseUpdate(args);
  const resolved = await projectOf(ctx, input.projectPath);
  const store = storeFor(ctx);
  const result = store.write(() => {
    const project = requireProject(store, resolved);
    const bug = requireBug(store, project, input.ref);
    const related = input.related === undefined ? undefined : resolveRelated(store, project, bug, input.related);
    const plan = planUpdate(stateOf(store, bug), {
      title: input.title,
      description: input.description,
      status: input.status,
      priority: input.priority,
      tags: input.tags,
      related,
      note: input.note,
    });
    if (isEmptyPlan(plan)) return { changed: false, changes: {}, view: viewOne(store, project, bug, false) };
    const updated = store.applyPlan(bug, plan, ctx.callId);
    return { changed: true, changes: changesView(store, plan), view: viewOne(store, project, updated, false) };
  });
  const message = result.changed ? `Updated bug: ${result.view.bug_id}` : `No changes: ${result.view.bug_id} already has these values`;
  return ok({ message, changed: result.changed, changes: result.changes, bug: result.view });
}

export async function closeBug(args: JsonObject, ctx: ToolContext, storeFor: StoreProvider): Promise<ToolOutcome> {
  const input = parseClose(args);
  const resolved = await projectOf(ctx, input.projectPath);
  const store = storeFor(ctx);
  const view = store.write(() => {
    const project = requireProject(store, resolved);
    const bug = requireBug(store, project, input.ref);
    if (bug.status === "closed") throw new ToolError(`${formatBugId(bug.number)} is already closed`, "ALREADY_CLOSED");
    const plan = planUpdate(stateOf(store, bug), { status: "closed", note: input.resolution });
    return viewOne(store, project, store.applyPlan(bug, plan, ctx.callId), false);
  });
  return ok({ message: `Closed bug: ${view.bug_id}`, bug: view });
}

// --- pages ----------------------------------------------------------------------

interface PagePlan {
  query: PageQuery;
  fingerprint: string;
}

/** Turns list arguments into a page query; the fingerprint binds cursors to it. */
function planPage(scope: string, input: Omit<ListInput, "projectPath">, project: number | undefined): PagePlan {
  let match: string | undefined;
  if (input.query !== undefined) {
    try {
      match = buildFtsQuery(input.query).expression;
    } catch (error) {
      if (error instanceof SearchQueryError) throw new ToolError(error.message, "INVALID_QUERY");
      throw error;
    }
  }
  const fingerprint = JSON.stringify([scope, project ?? null, input.status ?? null, input.priority ?? null, input.tags, match ?? null, input.sort]);
  let after: CursorKeys | undefined;
  if (input.cursor !== undefined) {
    try {
      after = decodeCursor(input.cursor, input.sort, fingerprint);
    } catch (error) {
      if (error instanceof CursorError) {
        throw new ToolError(`invalid cursor: ${error.message}; repeat the call without a cursor to start from the first page`, "INVALID_CURSOR");
      }
      throw error;
    }
  }
  const query: PageQuery = { tags: input.tags, sort: input.sort, limit: input.limit };
  if (project !== undefined) query.project = project;
  if (input.status !== undefined) query.status = input.status;
  if (input.priority !== undefined) query.priority = input.priority;
  if (match !== undefined) query.match = match;
  if (after !== undefined) query.after = after;
  return { query, fingerprint };
}

function runPage(store: BugStore, plan: PagePlan) {
  try {
    return store.page(plan.query);
  } catch (error) {
    // The expression is built from quoted strings only; should FTS5 still object, say so plainly.
    const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
    if (plan.query.match !== undefined && code === "SQLITE_ERROR") {
      throw new ToolError(`the search query could not be run (${(error as Error).message}); use plain words`, "INVALID_QUERY");
    }
    throw error;
  }
}

function pageResult(plan: PagePlan, page: { rows: readonly BugRow[]; hasMore: boolean }, bugs: BugView[]) {
  const result: { bugs: BugView[]; count: number; has_more: boolean; next_cursor?: string } = {
    bugs,
    count: bugs.length,
    has_more: page.hasMore,
  };
  const last = page.rows.at(-1);
  if (page.hasMore && last !== undefined) result.next_cursor = encodeCursor(plan.query.sort, rowKeys(last, plan.query.sort), plan.fingerprint);
  return result;
}

/** Said beside the empty list of a project nobody has reported a bug in yet. */
export const UNTRACKED_NOTE = "no bug has been reported in this project yet; add_bug reports the first one";

export async function listBugs(args: JsonObject, ctx: ToolContext, storeFor: StoreProvider): Promise<ToolOutcome> {
  const input = parseList(args);
  const resolved = await projectOf(ctx, input.projectPath);
  const store = storeFor(ctx);
  const result = store.read(() => {
    const project = store.findProjectByPath(resolved.path);
    if (project === undefined) {
      // Listing is a natural first call: a project without bugs yet has an empty list, not an
      // error. A read registers nothing (add_bug or init_bugtracker do). The arguments are still
      // checked as for a known project, so a bad query or cursor is refused the same way.
      planPage("list", input, undefined);
      return { project_id: resolved.projectId, project_path: resolved.path, bugs: [], count: 0, has_more: false, note: UNTRACKED_NOTE };
    }
    const plan = planPage("list", input, project.id);
    const page = runPage(store, plan);
    const bugs = store.views(page.rows, new Map([[project.id, project]]), { history: input.includeHistory, projectPath: false });
    return { project_id: project.project_id, project_path: project.path, ...pageResult(plan, page, bugs) };
  });
  return ok(result);
}

export async function searchBugsGlobal(args: JsonObject, ctx: ToolContext, storeFor: StoreProvider): Promise<ToolOutcome> {
  const input = parseSearch(args);
  const store = storeFor(ctx);
  const projects = store.read(() => store.allProjects());
  // Registered under an earlier policy is not enough: each project must still pass
  // the path guard now and still be the same real directory, or it is left out.
  const excluded: number[] = [];
  for (const project of projects) {
    try {
      const info = await ctx.fs.stat(project.path);
      if (info.kind !== "directory" || info.path !== project.path) excluded.push(project.id);
    } catch {
      excluded.push(project.id);
    }
  }
  ctx.signal.throwIfAborted();
  // The checks above awaited: had the database file been replaced meanwhile, the storage
  // has closed this connection, and the projects read above belong to the old file.
  if (storeFor(ctx) !== store) {
    throw new ToolError("the bug database file was replaced during the search; repeat the call", "DB_REPLACED");
  }
  const byId = new Map(projects.map((project) => [project.id, project]));
  const result = store.read(() => {
    const plan = planPage("search", input, undefined);
    if (excluded.length > 0) plan.query.excludeProjects = excluded;
    const page = runPage(store, plan);
    // A project registered after the check above was not checked: leave its bugs out.
    const checked = page.rows.filter((row) => byId.has(row.project));
    const bugs = store.views(checked, byId, { history: input.includeHistory, projectPath: true });
    return { excluded_projects: excluded.length, ...pageResult(plan, page, bugs) };
  });
  return ok(result);
}
