/**
 * The `instructions` of the initialize result: how a model should use this server, naming
 * only tools the policy lets the session see (a denied tool named there would send the
 * model to a call that fails).
 */
export function serverInstructions(allowed: ReadonlySet<string>): string {
  const parts = ["Tools here run on the user's machine under a security policy the owner wrote."];
  if (allowed.has("search_tools")) {
    const overview = allowed.has("list_categories") ? " (or list_categories for an overview)" : "";
    parts.push(`To find the right tool, call search_tools with a few words describing the task${overview}, then call the tool it names.`);
  } else if (allowed.has("list_categories")) {
    parts.push("For an overview of the tools, call list_categories.");
  }
  if (allowed.has("list_allowed_directories")) {
    parts.push("File tools work only inside the directories list_allowed_directories names; call it before naming a path.");
  }
  parts.push(
    "Every call is checked (allowed tool, rate limit, argument schema, file paths) and recorded in an audit log.",
    "A refused or failed call returns isError with the reason and how to fix the call: read it and adjust, do not repeat the same call.",
  );
  return parts.join(" ");
}
