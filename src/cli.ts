/**
 * The commands for people: serve (the default), check-policy, audit verify/tail, init.
 * Human output goes to stdout only for the non-serving commands; serving keeps stdout
 * for the protocol.
 */
import { closeSync, fchmodSync, fsyncSync, lstatSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, constants as fsConstants } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs, UsageError, USAGE, type CliCommand } from "./cli-args.js";
import { PACKAGE_ROOT, SERVER_NAME, VERSION } from "./version.js";
import { serve } from "./server.js";
import { makeDirectoriesSync } from "./util/make-directories.js";
import { shellWords } from "./util/text.js";

/** Set once stdout failed (its reader went away, as with `| head`): later output is dropped. */
let stdoutGone = false;
const out = (text: string) => {
  if (!stdoutGone) process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
};
const err = (text: string) => process.stderr.write(text.endsWith("\n") ? text : `${text}\n`);

export async function runCli(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let command: CliCommand;
  try {
    command = parseArgs(argv, env);
  } catch (error) {
    if (error instanceof UsageError) {
      err(`${SERVER_NAME}: ${error.message}\n\n${USAGE}`);
      return 2;
    }
    throw error;
  }
  // Serving handles its stdout itself. For the other commands, a reader that goes away
  // ends the output, not the command: no 'Unhandled error event' crash, and the exit
  // code (check-policy's or audit verify's verdict) is still the command's own.
  if (command.command !== "serve") {
    process.stdout.on("error", (error: NodeJS.ErrnoException) => {
      if (!stdoutGone && error.code !== "EPIPE") err(`${SERVER_NAME}: cannot write to stdout: ${error.message}`);
      stdoutGone = true;
    });
  }
  const code = await run(command, argv, env);
  // Let stdout drain before the caller exits (pipes may be asynchronous). A server has
  // already flushed within its shutdown deadline: a client that stopped reading must not
  // keep it from exiting.
  if (command.command !== "serve") await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
  return code;
}

async function run(command: CliCommand, argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  switch (command.command) {
    case "help":
      out(USAGE);
      return 0;
    case "version":
      out(`${SERVER_NAME} ${VERSION}`);
      return 0;
    case "serve":
      return serve(command, { argv }, env);
    case "check-policy": {
      const { runCheckPolicy } = await import("./security/policy/check-policy.js");
      return runCheckPolicy(command.file, { vars: env, home: env.HOME || homedir(), stateDir: command.stateDir }, out, err);
    }
    case "audit": {
      // The policy is read only to find the default log (and key): with a FILE given, a broken policy does not matter.
      let defaultLogPath = "";
      let keyFile = "";
      try {
        ({ logFile: defaultLogPath, keyFile } = await auditFiles(command.policyFile, command.stateDir, env));
      } catch (error) {
        if (command.sub === "pubkey" || !namesAFile(command.argv)) {
          const what = command.sub === "pubkey" ? "the audit signing key" : "the audit log";
          err(`${SERVER_NAME}: cannot find ${what}: ${error instanceof Error ? error.message : String(error)}\n${command.sub === "pubkey" ? "fix the policy" : "name the log file or directory, or fix the policy"}`);
          return 2;
        }
      }
      const cli = await import("./security/audit/cli.js");
      if (command.sub === "verify") return cli.runAuditVerify(command.argv, { out, err, defaultLogPath });
      if (command.sub === "pubkey") return cli.runAuditPubkey(command.argv, { out, err, keyFile });
      // `tail --follow` runs until interrupted, or until its reader goes away (`| head`).
      const stop = new AbortController();
      const abort = () => stop.abort();
      process.once("SIGINT", abort).once("SIGTERM", abort);
      process.stdout.once("error", abort);
      try {
        return await cli.runAuditTail(command.argv, { out, err, defaultLogPath, signal: stop.signal });
      } finally {
        process.off("SIGINT", abort).off("SIGTERM", abort);
        process.stdout.off("error", abort);
      }
    }
    case "init":
      return init(command.stateDir, command.force);
  }
}

/** Whether anything is at `file`, a symbolic link included (dangling or not). */
function lexists(file: string): boolean {
  try {
    lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Writes `data` to a new file beside `target` (0600), then renames it over `target`:
 * a symbolic link there is replaced, never written through (to wherever it points), and
 * no one ever reads half a file.
 */
function writeReplacing(target: string, data: Buffer): void {
  const temp = `${target}.${process.pid}.tmp`;
  const fd = openSync(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
  try {
    try {
      fchmodSync(fd, 0o600); // whatever the umask
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, target);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}

/** A file-system error in words, without a stack trace. */
function fsReason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EEXIST" || code === "ENOTDIR") return "a file is in the way (a directory is needed there)";
  if (code === "EISDIR") return "it is a directory";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EROFS") return "read-only file system";
  return error instanceof Error ? error.message : String(error);
}

/** Whether the audit subcommand's arguments name a FILE or DIR (flags with values skipped). */
function namesAFile(argv: readonly string[]): boolean {
  const withValue = new Set(["--pubkey", "--expect-head", "-n", "--lines"]);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (withValue.has(arg)) i++;
    else if (!arg.startsWith("-")) return true;
  }
  return false;
}

/** The audit log and signing key the policy names (or the default ones in the state directory). */
async function auditFiles(policyFile: string | undefined, stateDir: string, env: NodeJS.ProcessEnv): Promise<{ logFile: string; keyFile: string }> {
  let audit;
  if (policyFile) {
    const { loadPolicyFile } = await import("./security/policy/load.js");
    // As the server reads it (deny rules not compiled): the log a server on this policy writes.
    audit = loadPolicyFile(policyFile, { vars: env, home: env.HOME || homedir(), stateDir }, { denyGlobs: "when-invalid" }).policy.audit;
  } else {
    const { defaultPolicy } = await import("./security/policy/defaults.js");
    audit = defaultPolicy(stateDir).audit;
  }
  const { signingKeyPath } = await import("./security/audit/checkpoint.js");
  return { logFile: audit.log_file, keyFile: signingKeyPath(stateDir, audit.signing_key) };
}

function init(stateDir: string, force: boolean): number {
  try {
    makeDirectoriesSync(stateDir, 0o700);
    makeDirectoriesSync(join(stateDir, "workspace"), 0o700);
  } catch (error) {
    err(`${SERVER_NAME} init: cannot create the state directory ${stateDir}: ${fsReason(error)}`);
    return 1;
  }
  const target = join(stateDir, "policy.yaml");
  const example = join(PACKAGE_ROOT, "policy.yaml");
  // The script this process runs: the launcher when built or installed, dist/src/main.js from tsc.
  // Commands name it with node's absolute path, so they run as printed whether or not
  // `mcp-secure-local` is on PATH (from a clone it is not).
  const entry = resolve(process.argv[1] ?? join(PACKAGE_ROOT, "dist", "mcp-secure-local.cjs"));
  if (lexists(target) && !force) {
    err(`${target} exists; keeping it (use --force to replace it with the example policy)`);
  } else {
    try {
      writeReplacing(target, readFileSync(example));
    } catch (error) {
      err(`${SERVER_NAME} init: cannot write ${target}: ${fsReason(error)}`);
      return 1;
    }
    // With the state directory, so that ${STATE_DIR} expands as the server will expand it.
    const check = shellWords([process.execPath, entry, "check-policy", target, "--state-dir", stateDir]);
    out(`wrote the example policy to ${target}; edit it, then check it with: ${check}`);
  }
  const args = [entry, "--policy", target, "--state-dir", stateDir];
  out(
    `\nAdd the server to an MCP client, for example (Claude Desktop's claude_desktop_config.json, Cursor's .cursor/mcp.json):\n` +
      JSON.stringify({ mcpServers: { "secure-local": { command: process.execPath, args } } }, null, 2) +
      // VS Code's file has its own shape: "servers", and the transport named.
      `\n\nVS Code (.vscode/mcp.json, or the user's mcp.json):\n` +
      JSON.stringify({ servers: { "secure-local": { type: "stdio", command: process.execPath, args } } }, null, 2) +
      `\n\nClaude Code: ${shellWords(["claude", "mcp", "add", "secure-local", "--", process.execPath, entry, "--policy", target, "--state-dir", stateDir])}` +
      // The bug tracker's default project, and the base of relative paths: the client's choice, so only said.
      `\n\nTo give the bug tracker a default project (and relative paths a base), add "env": {"MCP_PROJECT_PATH": "/path/to/project"} to the entry` +
      ` (Claude Code: -e MCP_PROJECT_PATH=/path/to/project before the --); without it, bug tracker calls name project_path.`,
  );
  return 0;
}
