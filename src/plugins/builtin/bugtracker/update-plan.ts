/**
 * Decides what an update changes: current state and request in, the list of real
 * changes out (or a refusal). Pure: the store applies the plan inside the write
 * transaction that read the state, so the decision and the write see the same row.
 */
import { ToolError } from "../../contract.js";
import { TRANSITIONS, canTransition, type Priority, type Relationship, type Status } from "./model.js";

export interface BugState {
  /** `BUG-12`, for messages. */
  label: string;
  title: string;
  description: string;
  status: Status;
  priority: Priority;
  tags: readonly string[];
  /** Outgoing links by the other bug's row id. */
  related: ReadonlyMap<number, Relationship>;
}

export interface UpdateRequest {
  /** Already trimmed and checked. */
  title?: string | undefined;
  description?: string | undefined;
  status?: Status | undefined;
  priority?: Priority | undefined;
  /** The full new tag set (replaces), already normalized. */
  tags?: readonly string[] | undefined;
  /** The full new set of outgoing links (replaces), other bugs already resolved to row ids. */
  related?: ReadonlyArray<{ other: number; relationship: Relationship }> | undefined;
  note?: string | undefined;
}

export interface RelatedChange {
  other: number;
  /** Absent: the link is new. */
  from?: Relationship;
  /** Absent: the link is removed. */
  to?: Relationship;
}

export interface UpdatePlan {
  title?: { from: string; to: string };
  description?: { from: string; to: string };
  status?: { from: Status; to: Status };
  priority?: { from: Priority; to: Priority };
  tagsAdded: string[];
  tagsRemoved: string[];
  related: RelatedChange[];
  note?: string;
}

export function isEmptyPlan(plan: UpdatePlan): boolean {
  return (
    plan.title === undefined &&
    plan.description === undefined &&
    plan.status === undefined &&
    plan.priority === undefined &&
    plan.tagsAdded.length === 0 &&
    plan.tagsRemoved.length === 0 &&
    plan.related.length === 0 &&
    plan.note === undefined
  );
}

export function transitionError(label: string, from: Status, to: Status): ToolError {
  const allowed = TRANSITIONS[from];
  return new ToolError(
    `cannot move ${label} from ${from} to ${to}; from ${from} the allowed statuses are: ${allowed.join(", ")}` +
      (from === "closed" ? " (reopen it first)" : ""),
    "INVALID_TRANSITION",
  );
}

export function planUpdate(state: BugState, request: UpdateRequest): UpdatePlan {
  const plan: UpdatePlan = { tagsAdded: [], tagsRemoved: [], related: [] };

  if (request.title !== undefined && request.title !== state.title) plan.title = { from: state.title, to: request.title };
  if (request.description !== undefined && request.description !== state.description) {
    plan.description = { from: state.description, to: request.description };
  }
  if (request.status !== undefined && request.status !== state.status) {
    if (!canTransition(state.status, request.status)) throw transitionError(state.label, state.status, request.status);
    plan.status = { from: state.status, to: request.status };
  }
  if (request.priority !== undefined && request.priority !== state.priority) {
    plan.priority = { from: state.priority, to: request.priority };
  }
  if (request.tags !== undefined) {
    const next = new Set(request.tags);
    const current = new Set(state.tags);
    plan.tagsAdded = [...next].filter((tag) => !current.has(tag)).sort();
    plan.tagsRemoved = [...current].filter((tag) => !next.has(tag)).sort();
  }
  if (request.related !== undefined) {
    const wanted = new Map<number, Relationship>();
    for (const link of request.related) wanted.set(link.other, link.relationship);
    for (const [other, from] of state.related) {
      const to = wanted.get(other);
      if (to === undefined) plan.related.push({ other, from });
      else if (to !== from) plan.related.push({ other, from, to });
    }
    for (const [other, to] of wanted) {
      if (!state.related.has(other)) plan.related.push({ other, to });
    }
    plan.related.sort((a, b) => a.other - b.other);
  }
  if (request.note !== undefined) plan.note = request.note;
  return plan;
}
