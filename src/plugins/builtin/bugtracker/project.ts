/**
 * Which project a call acts on. The path comes from the call or, failing that,
 * from the session; either way it goes through the guarded filesystem (the
 * policy decides, and we get the canonical real path back) and must be a
 * directory. A bug id never selects a project by itself.
 */
import path from "node:path";
import { CapabilityDeniedError, ToolError, type GuardedFs, type SessionInfo } from "../../contract.js";
import { projectIdFor } from "./ids.js";

export interface ResolvedProject {
  /** Canonical real path, as the guard resolved it. */
  path: string;
  name: string;
  projectId: string;
  /** Where the path came from, for messages. */
  source: "argument" | "session";
}

function errnoCode(error: unknown): string | undefined {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

export async function resolveProject(fs: GuardedFs, session: SessionInfo, given: string | undefined): Promise<ResolvedProject> {
  const source = given !== undefined ? "argument" : "session";
  const requested = given ?? session.projectPath;
  if (requested === undefined || requested === "") {
    throw new ToolError(
      'no project: pass "project_path" (an absolute path to the project directory), or start the server with MCP_PROJECT_PATH or server.project_path in the policy',
      "PROJECT_REQUIRED",
    );
  }
  const label = source === "argument" ? `project_path ${JSON.stringify(requested)}` : `the session's project ${JSON.stringify(requested)}`;
  // `~/...` is left to the guarded filesystem (the home directory). A relative argument
  // names a directory under the session's project, as the path guard read it and as the
  // seed accepted it; without a session project it would depend on the server's working
  // directory, which the model cannot know, so it is refused.
  let target = requested;
  if (!path.isAbsolute(requested) && requested !== "~" && !requested.startsWith("~/")) {
    if (source === "argument" && session.projectPath !== undefined && path.isAbsolute(session.projectPath)) {
      target = path.resolve(session.projectPath, requested);
    } else if (source === "argument") {
      throw new ToolError(
        `${label} is relative, and this session has no project to resolve it against; pass an absolute path (or start the server with MCP_PROJECT_PATH)`,
        "PROJECT_PATH_INVALID",
      );
    } else {
      throw new ToolError(`${label} must be an absolute path`, "PROJECT_PATH_INVALID");
    }
  }

  let info;
  try {
    info = await fs.stat(target);
  } catch (error) {
    // A policy refusal stays a refusal: the engine records it as a denial.
    if (error instanceof CapabilityDeniedError) throw error;
    const code = errnoCode(error);
    if (code === "ENOENT" || code === "ENOTDIR" || code === "PATH_NOT_FOUND" || code === "PATH_NOT_DIRECTORY") {
      throw new ToolError(`${label} does not exist; it must be an allowed directory`, "PROJECT_NOT_FOUND");
    }
    if (error instanceof ToolError) throw error;
    throw new ToolError(`${label} cannot be checked (${code ?? "unknown error"}); it must be an allowed directory`, "PROJECT_PATH_INVALID");
  }
  if (info.kind !== "directory") throw new ToolError(`${label} is not a directory; it must be an allowed directory`, "PROJECT_NOT_DIRECTORY");
  const real = info.path;
  return { path: real, name: path.basename(real) || real, projectId: projectIdFor(real), source };
}
