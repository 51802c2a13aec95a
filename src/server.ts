/**
 * Assembles and runs the server: policy, plugins, engine, audit log, and one MCP
 * session over stdio; then shuts it all down in order on EOF, SIGTERM, SIGINT or SIGHUP.
 */
import { join, resolve } from "node:path";
import { Connection } from "./protocol/connection.js";
import { McpSession, type ServerIdentity } from "./protocol/session.js";
import type { Plugin } from "./plugins/contract.js";
import { PluginRegistry } from "./plugins/registry.js";
import { createBuiltInPlugins } from "./plugins/builtin/index.js";
import { serverInstructions } from "./instructions.js";
import type { SecurityStatus } from "./plugins/builtin/status.js";
import { searchUrlProblem } from "./plugins/builtin/websearch/index.js";

type ExecStatus = SecurityStatus["exec"];
import { SecurityEngine, allowedTools, catalogSha256, refusalsPerSummary } from "./security/engine.js";
import type { EffectivePolicy } from "./security/policy-types.js";
import { defaultPolicy, defaultPolicySource } from "./security/policy/defaults.js";
import { auditHeadLine, auditOwnFiles, openAuditLog, nullAuditSink, type AuditSink, type AuditStatus } from "./security/audit/index.js";
import { publishedTool } from "./security/published-schema.js";
import { auditLogFileConflict } from "./security/audit/log-file-conflict.js";
import { signingKeyPath } from "./security/audit/checkpoint.js";
import { checkPath, compilePathPolicy, denyRuleProblems, PathPolicyError, type CompiledPathPolicy, type ProtectedPath } from "./security/path-guard.js";
import { createCapabilityFactory, type CapabilityFactory } from "./security/capabilities/index.js";
import { redact, redactString } from "./security/redaction.js";
import { createLogHub } from "./util/logger.js";
import { monotonicMs } from "./util/clock.js";
import { closeInheritedFds } from "./util/inherited-fds.js";
import { makeDirectoriesSync } from "./util/make-directories.js";
import { parseArgs, projectPathFromEnv, UsageError, USAGE, type ServeArgs } from "./cli-args.js";
import { SERVER_NAME, VERSION } from "./version.js";
import { policySha256 as policyHash } from "./security/policy/hash.js";
import { ToolAccessPolicyError, unmatchedToolNames } from "./security/policy/tool-access.js";
import { PolicyError } from "./security/policy/errors.js";
import { seedAuditLogProblem } from "./security/seed-audit-log.js";
import { homedir } from "node:os";
import { ByteBudget } from "./util/byte-budget.js";

export interface RunOptions {
  argv: string[];
  env?: NodeJS.ProcessEnv;
  extraPlugins?: Plugin[];
  /** Benchmarks only: run tools without the security engine's checks. */
  unsafeBypassEngine?: boolean;
  /** Tests only: the bwrap the exec sandbox uses instead of the first on PATH (a missing file simulates none). */
  bwrapPath?: string;
}

/**
 * Shutdown runs against one deadline, so its waits never add up past the 2 s a client may
 * give a server: within it, on stdin EOF calls may finish for a while before they are
 * aborted, then their outcomes (and audit entries) may land, and the last answers drain.
 */
const SHUTDOWN_BUDGET_MS = 1700;
const EOF_GRACE_MS = 700;
const SHUTDOWN_GRACE_MS = 800;
/** Kept back from the grace for closing plugins and the audit log and for the last write. */
const CLOSE_RESERVE_MS = 300;
/** The last answers may take this long to drain (less when the deadline is nearer, never under the minimum). */
const FLUSH_MAX_MS = 300;
const FLUSH_MIN_MS = 50;
/**
 * Signals that stop the server in order (abort the calls, record their outcomes, close the
 * audit log). SIGTERM is the MCP shutdown sequence's and SIGINT is Ctrl-C; SIGHUP comes when
 * the terminal a client runs in is closed, which signals the client's whole process group,
 * the servers it spawned included. Unheard, any of them kills at once, with no record of
 * the calls in flight and no closing checkpoint.
 */
const STOP_SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"] as const;
/** Without a client, the exec sandbox is probed (and the banner printed) this long after the start. */
const PROBE_WITHOUT_CLIENT_MS = 250;

/** Who the server is; the session adds the instructions, which depend on the tools the policy allows. */
export const IDENTITY: Omit<ServerIdentity, "instructions"> = {
  name: SERVER_NAME,
  version: VERSION,
  title: "MCP Secure Local",
  description: "Local tools under the machine owner's policy, with a tamper-evident audit log of every call.",
};

/** Serves MCP on process.stdin/stdout as the CLI does; resolves with the exit code. */
export async function runStdioServer(options: RunOptions): Promise<number> {
  const env = options.env ?? process.env;
  let args: ServeArgs;
  try {
    const parsed = parseArgs(options.argv, env);
    if (parsed.command !== "serve") throw new UsageError(`"${parsed.command}" is not a serve command`);
    args = parsed;
  } catch (error) {
    process.stderr.write(`mcp-secure-local: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return 2;
  }
  return serve(args, options, env);
}

export async function serve(args: ServeArgs, options: RunOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const hub = createLogHub({ stderrLevel: args.logLevel });
  const log = hub.logger("server");
  const fatal = (message: string): number => {
    log.error(message);
    return 1;
  };
  // A policy report holds one problem per line: each is a record of its own (a record is one
  // line, its line breaks escaped), so that every problem reads as check-policy prints it.
  const refuse = (error: unknown): number => {
    const lines =
      error instanceof PolicyError
        ? error.lines
        : error instanceof PathPolicyError || error instanceof ToolAccessPolicyError
          ? error.message.split("\n")
          : [messageOf(error)];
    for (const line of lines) log.error(`refusing to start: ${line}`);
    return 1;
  };

  try {
    makeDirectoriesSync(args.stateDir, 0o700);
  } catch (error) {
    return fatal(`cannot create the state directory ${args.stateDir}: ${messageOf(error)}`);
  }

  // The policy: refuse to start on anything but a valid one.
  let policy: EffectivePolicy;
  let policySha256: string;
  let policySource: string;
  try {
    if (args.policyFile) {
      // Loaded only when needed: the YAML parser is not part of a default start.
      const { loadPolicyFile } = await import("./security/policy/load.js");
      // Deny rules are compiled on first use, not at every start (a policy refused anyway names them too).
      const loaded = loadPolicyFile(
        args.policyFile,
        { vars: env, home: env.HOME || homedir(), stateDir: args.stateDir },
        { denyGlobs: "when-invalid" },
      );
      for (const warning of loaded.warnings) log.warn(`policy: ${warning}`);
      for (const note of loaded.notes) log.info(`policy: ${note}`);
      policy = loaded.policy;
      policySha256 = loaded.sha256;
      policySource = loaded.source;
    } else {
      policy = defaultPolicy(args.stateDir);
      policySha256 = policyHash(policy);
      policySource = defaultPolicySource();
      makeDirectoriesSync(join(args.stateDir, "workspace"), 0o700);
    }
  } catch (error) {
    return refuse(error);
  }

  let audit: AuditSink | undefined;
  const builtInPolicy = !args.policyFile;
  // How programs run (`none` when no program may run at all); with a sandbox to probe, once the probe has said.
  const commandsMayRun = policy.commands.allowed === undefined || policy.commands.allowed.length > 0;
  // Before anything can spawn: descriptors the parent left open would reach every program run. Only
  // where programs may run: a parent may watch such a descriptor to learn when its child ends.
  if (commandsMayRun) {
    const inherited = closeInheritedFds(env);
    if (inherited.length > 0) log.info(`closed ${inherited.length} file descriptor(s) inherited from the parent (${inherited.join(", ")}), which programs run for tools would otherwise get`);
  }
  const needsProbe = commandsMayRun && policy.commands.sandbox !== "off";
  let execState: ExecStatus["commands"] = commandsMayRun ? "unsandboxed" : "none";
  let probed: Promise<void> | undefined;
  // Read at each call; tools run only once the log is open.
  const readStatus = async (): Promise<SecurityStatus> => {
    if (needsProbe) await probeSandbox();
    return securityStatus(audit?.status(), policySha256, builtInPolicy, { sandbox: policy.commands.sandbox, commands: execState });
  };
  const searchUrl = env.MCP_SECURE_LOCAL_WEB_SEARCH_URL || undefined;
  const searchProblem = searchUrl === undefined ? undefined : searchUrlProblem(searchUrl);
  if (searchProblem !== undefined) log.error(`MCP_SECURE_LOCAL_WEB_SEARCH_URL: ${searchProblem}; web_search calls will fail until it is fixed or unset`);
  const plugins: Plugin[] = [
    ...createBuiltInPlugins({
      readStatus,
      webSearch: { ...(searchUrl === undefined ? {} : { searchUrl }), userAgent: `${SERVER_NAME}/${VERSION} (web_search)` },
    }),
    ...(options.extraPlugins ?? []),
  ];
  let registry: PluginRegistry;
  let engine: SecurityEngine;
  let capabilities: CapabilityFactory;
  let paths: CompiledPathPolicy;
  let instructions: string;
  const envProjectPath = projectPathFromEnv(env, env.HOME || homedir());
  const projectPath = envProjectPath ?? policy.server.project_path;
  try {
    const own = ownFiles(policy, args);
    paths = compilePathPolicy(policy.filesystem, {
      homeDir: env.HOME || homedir(),
      baseDir: projectPath ?? process.cwd(),
      protectedPaths: own,
    });
    for (const warning of paths.warnings) log.warn(`policy: ${warning}`);
    const execHomeDir = join(args.stateDir, "exec-home");
    makeDirectoriesSync(execHomeDir, 0o700);
    const dataDir = join(args.stateDir, "data");
    // Made now, not with the first database: the exec sandbox hides what exists when a program starts,
    // and a database directory made while one runs would be open to it.
    makeDirectoriesSync(dataDir, 0o700);
    capabilities = createCapabilityFactory({
      policy,
      paths,
      dataDir,
      execHomeDir,
      env,
      ownFiles: own,
      logger: hub.logger("exec"),
      ...(options.bwrapPath === undefined ? {} : { bwrapPath: options.bwrapPath }),
    });
    registry = new PluginRegistry(plugins);
    for (const warning of unmatchedToolNames(policy.tools, registry.tools().map((entry) => entry.tool.name))) log.warn(`policy: ${warning}`);
    const tools = allowedTools(registry, policy.tools);
    instructions = serverInstructions(new Set(tools.map((entry) => entry.tool.name)));
    // A seed policy names the seed's own log: said as such, not as a damaged log of ours.
    const seedLog = policy.audit.enabled ? seedAuditLogProblem(policy.audit.log_file) : undefined;
    if (seedLog !== undefined) throw new Error(seedLog);
    const logConflict = policy.audit.enabled
      ? auditLogFileConflict(policy.audit.log_file, signingKeyPath(args.stateDir, policy.audit.signing_key), args.policyFile ? resolve(args.policyFile) : undefined)
      : undefined;
    if (logConflict !== undefined) throw new Error(logConflict);
    audit = policy.audit.enabled
      ? await openAuditLog({
          policy: policy.audit,
          stateDir: args.stateDir,
          serverVersion: VERSION,
          policySha256,
          // As tools/list shows it: an auditor can hash the list a client received and find it here.
          catalogSha256: catalogSha256(tools.map((entry) => publishedTool(entry.tool))),
          logger: hub.logger("audit"),
        })
      : nullAuditSink();
    engine = new SecurityEngine({
      policy,
      registry,
      audit,
      capabilities,
      paths,
      logger: hub.logger("engine"),
      // Called only during tool calls, after the session below exists.
      session: () => ({ projectPath, clientName: session.client.name }),
      unsafeBypass: options.unsafeBypassEngine === true,
      resultBudget: new ByteBudget(args.maxResultMemory),
      // Refusals held for their summary never take more than a quarter of the in-flight slots.
      refusals: { maxCounted: refusalsPerSummary(args.maxInFlight) },
    });
  } catch (error) {
    return refuse(error);
  }

  // Tool schemas are registered once the handshake is answered (a tools request before that
  // starts it too): the validation module is loaded off the handshake's path; tools wait for it.
  let prepared: Promise<void> | undefined;
  let failStartup: ((error: unknown) => void) | undefined;
  const prepare = () => {
    prepared ??= engine.prepare().catch((error: unknown) => failStartup?.(error));
  };
  const session = new McpSession({
    identity: { ...IDENTITY, instructions },
    tools: engine,
    logHub: hub,
    logger: hub.logger("session"),
    pageSize: args.pageSize,
    redact: (value) => redact(value).value,
    onInitialized: () => {
      setImmediate(prepare);
      if (needsProbe) setImmediate(() => void probeSandbox());
      setImmediate(reportBrokenDenyRules);
    },
  });
  const connection = new Connection(process.stdin, process.stdout, session.handlers, {
    maxLineBytes: args.maxLineBytes,
    maxInFlight: args.maxInFlight,
    logger: hub.logger("rpc"),
  });
  session.attach(connection);

  const banner = (exec: string): void => {
    process.stderr.write(
      `${SERVER_NAME} ${VERSION}: policy ${policySource} (sha256 ${policySha256.slice(0, 16)}…); state in ${args.stateDir}; ` +
        `${engine.toolCount} tools; audit ${policy.audit.enabled ? policy.audit.log_file : "OFF"}; ${exec}. Waiting for an MCP client on stdin.\n`,
    );
  };
  /**
   * The exec sandbox is probed (two runs of bwrap) once the handshake is answered, or a moment after
   * the start without a client, never in the handshake's way; exec calls and security_status wait
   * for it. The banner follows it, so that it can say how programs run, after any warning about it.
   */
  function probeSandbox(): Promise<void> {
    probed ??= capabilities
      .execSandbox()
      .then((sandbox) => sandbox.state())
      .catch((error: unknown) => ({ state: policy.commands.sandbox === "required" ? ("refused" as const) : ("unsandboxed" as const), reason: messageOf(error) }))
      .then((sandbox) => {
        execState = sandbox.state;
        if (sandbox.state === "sandboxed") return banner(`exec sandboxed (bubblewrap ${sandbox.version})`);
        if (sandbox.state === "refused") {
          log.error(`exec: every command will be refused: commands.sandbox is required and no sandbox can be made: ${sandbox.reason}`);
          return banner("exec REFUSED (no sandbox)");
        }
        log.warn(
          `exec: commands run without a sandbox, with your user's file and network access: ${sandbox.reason}. ` +
            "Set commands.sandbox: required to refuse them instead, or off to run them so without this warning",
        );
        return banner("exec NOT sandboxed");
      });
    return probed;
  }
  /**
   * Deny rules compile on first use (a start does not pay for them), and one that cannot refuses
   * every path (or every write): the operator hears of it once the handshake is out of the way,
   * not first from a refused call.
   */
  let denyRulesChecked = false;
  function reportBrokenDenyRules(): void {
    if (denyRulesChecked) return;
    denyRulesChecked = true;
    for (const problem of denyRuleProblems(paths)) {
      const refused = problem.startsWith("filesystem.write_denied_paths") ? "every write" : "every file access";
      log.error(`policy: ${problem}: until it is fixed, tools are refused ${refused}; check-policy names every problem of the file`);
    }
  }
  setTimeout(reportBrokenDenyRules, PROBE_WITHOUT_CLIENT_MS).unref();
  if (needsProbe) setTimeout(() => void probeSandbox(), PROBE_WITHOUT_CLIENT_MS).unref();
  else banner(commandsMayRun ? "exec not sandboxed (commands.sandbox: off)" : "exec: no command allowed");

  if (projectPath !== undefined) warnAboutProject(paths, projectPath, envProjectPath !== undefined ? "MCP_PROJECT_PATH" : "server.project_path", log);

  let exitCode = 0;
  // Faults outside every caller (a bug of ours or of a built-in plugin) would end the process at
  // once, as a kill does: no outcome for the calls in flight, no closed audit log. A promise
  // rejected with nobody to handle it leaves nothing half-done: it is logged and serving goes on.
  // An uncaught exception may have left any state half-updated: the server stops, in order
  // (calls aborted and recorded, the audit log closed), and exits 1.
  let onStrayException: ((error: unknown) => void) | undefined;
  const onStrayRejection = (reason: unknown): void => {
    log.error(`internal error, ignored (a promise rejected with nobody to handle it): ${faultSummary(reason)}`, undefined, faultStack(reason));
  };
  const strayException = (error: unknown): void => onStrayException?.(error);
  process.on("unhandledRejection", onStrayRejection);
  process.on("uncaughtException", strayException);
  const finished = new Promise<string>((resolve) => {
    connection.onEnd((why) => resolve(why === "input-end" ? "stdin closed" : "stdout closed"));
    for (const signal of STOP_SIGNALS) process.once(signal, () => resolve(signal));
    onStrayException = (error) => {
      log.error(`internal error, stopping (an exception no caller could catch): ${faultSummary(error)}`, undefined, faultStack(error));
      exitCode = 1;
      resolve("internal error");
    };
    // A tool schema of the wrong shape stops the server before any tool is served.
    failStartup = (error) => {
      log.error(`refusing to serve tools: ${messageOf(error)}`);
      exitCode = 1;
      resolve("startup failed");
    };
  });
  connection.start();
  const why = await finished;

  // Shutdown: stop taking work; on EOF let in-flight calls finish briefly (the client sent them
  // before closing), on a signal abort them at once; let their audit entries land; close; flush.
  const deadline = monotonicMs() + SHUTDOWN_BUDGET_MS;
  const left = () => Math.max(0, deadline - monotonicMs());
  log.info(`shutting down (${why})`);
  connection.stopAccepting();
  // Refusals held back for their summary entry are recorded, and answered, now.
  engine.beginClosing();
  if (why === "stdin closed") {
    // A signal during the grace cuts it short.
    const signalled = new Promise<boolean>((resolve) => {
      for (const signal of STOP_SIGNALS) process.once(signal, () => resolve(false));
    });
    if (!(await Promise.race([connection.drain(EOF_GRACE_MS), signalled]))) log.info("calls did not finish in time; aborting them");
  }
  session.beginClosing();
  connection.abortAll(`the server is shutting down (${why})`);
  await connection.drain(Math.min(SHUTDOWN_GRACE_MS, Math.max(0, left() - CLOSE_RESERVE_MS)));
  const partial = connection.sendOpenBatches();
  if (partial > 0) log.warn(`${partial} batch ${partial === 1 ? "response was" : "responses were"} sent without the calls that did not stop in time`);
  for (const plugin of registry.plugins()) {
    try {
      await plugin.close?.();
    } catch (error) {
      log.warn(`plugin ${plugin.name} failed to close`, { error: messageOf(error) });
    }
  }
  capabilities.close();
  // Counts of refusals made during the grace go into the log before its server_stop.
  engine.beginClosing();
  try {
    const head = await audit.close(why);
    // A copy of the head outside the file: clients keep the server's stderr in their own logs.
    if (head) process.stderr.write(`${SERVER_NAME}: ${auditHeadLine(head)}\n`);
  } catch (error) {
    log.error(`the audit log could not be closed cleanly: ${messageOf(error)}`);
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([connection.flush(), new Promise((resolve) => (timer = setTimeout(resolve, Math.max(FLUSH_MIN_MS, Math.min(FLUSH_MAX_MS, left())))))]);
  clearTimeout(timer);
  process.off("unhandledRejection", onStrayRejection);
  process.off("uncaughtException", strayException);
  return exitCode;
}

/**
 * A stray fault, said to the client and stderr alike: what it was, redacted like every log line
 * (an error's message may quote the arguments it failed on).
 */
function faultSummary(error: unknown): string {
  return redactString(error instanceof Error ? `${error.name}: ${error.message}` : String(error)).value;
}

/** Where a stray fault happened, for stderr only: its stack names the server's own files, no business of the client's. */
function faultStack(error: unknown): string | undefined {
  return error instanceof Error && error.stack !== undefined ? redactString(error.stack).value : undefined;
}

/**
 * Says at start when the session's project cannot be used: otherwise only the model hears it,
 * call by call, and the owner who set it sees nothing. Not awaited: a filesystem that does not
 * answer must not hold the start (the calls themselves check again, under their deadline).
 */
function warnAboutProject(paths: CompiledPathPolicy, projectPath: string, source: string, log: { warn(message: string): void }): void {
  const what = `the session's project ${projectPath} (${source})`;
  const consequence = "bug tracker calls without a project_path will fail";
  checkPath(paths, projectPath, "read").then(
    (verdict) => {
      if (!verdict.ok) log.warn(`${what} is refused by the filesystem policy: ${verdict.reason}; ${consequence}`);
      else if (!verdict.exists) log.warn(`${what} does not exist; ${consequence}`);
      else if (!verdict.isDirectory) log.warn(`${what} is not a directory; ${consequence}`);
    },
    (error: unknown) => log.warn(`${what} could not be checked: ${messageOf(error)}`),
  );
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The state directory's entries other than `workspace/` (see the README's "The state directory"). */
const STATE_ENTRIES = ["audit", "keys", "data", "exec-home", "policy.yaml"];

/**
 * What tools never reach through the file guard, whatever `allowed_paths` says: the state
 * directory's own entries, the audit log and its key wherever the policy puts them, and the
 * policy file (a tool that rewrote it would widen the next start's policy). Each also where
 * its symbolic link leads: the policy file is read through a link, so a link into a
 * dotfiles repository left the real file writable.
 */
function ownFiles(policy: EffectivePolicy, args: ServeArgs): ProtectedPath[] {
  const state = "the server's state (audit log, keys, databases)";
  const own: ProtectedPath[] = [
    ...STATE_ENTRIES.map((name) => ({ file: join(args.stateDir, name), what: state })),
    ...auditOwnFiles(policy.audit, args.stateDir),
  ];
  if (args.policyFile) own.push({ file: resolve(args.policyFile), what: "the policy file this server runs on" });
  return own;
}

/** What `security_status` reports: hashes and counters only, no path of this machine. */
function securityStatus(audit: AuditStatus | undefined, policySha256: string, builtInPolicy: boolean, exec: ExecStatus): SecurityStatus {
  const log: SecurityStatus["audit"] =
    audit === undefined || !audit.enabled
      ? { enabled: false }
      : {
          enabled: true,
          ok: audit.ok,
          logId: audit.logId ?? "",
          seq: audit.seq,
          head: audit.head,
          keyFingerprint: audit.keyFingerprint ?? "",
          fsync: audit.fsync ?? "batch",
        };
  return { server: { name: SERVER_NAME, version: VERSION }, policy: { sha256: policySha256, builtIn: builtInPolicy }, audit: log, exec };
}
