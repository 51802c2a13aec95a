/**
 * Builds the guarded capabilities a tool call receives. The policy parts are
 * compiled once per server; per call, only thin wrappers bind the call's signal and
 * deadline, and they are made on first use, so a call that touches nothing pays nothing.
 */
import { homedir } from "node:os";
import { CapabilityDeniedError, type GuardedExec, type GuardedFetch, type GuardedFs, type ListOptions, type PluginStorage } from "../../plugins/contract.js";
import type { EffectivePolicy } from "../policy-types.js";
import type { CompiledPathPolicy, ProtectedPath } from "../path-guard.js";
import { compileNetworkPolicy } from "../egress-guard.js";
import { compileCommandPolicy } from "../command-guard.js";
import { createGuardedFs } from "./fs.js";
import type { Lookup } from "./fetch.js";
import type { CallAbort } from "../../util/call-abort.js";
import { createPluginStorage } from "./storage.js";
import type { Logger } from "../../util/logger.js";
import type { ExecSandbox, SandboxAvailability } from "./sandbox.js";

export interface CallCapabilities {
  fs: GuardedFs;
  fetch: GuardedFetch;
  exec: GuardedExec;
  storage: PluginStorage;
}

export interface CapabilityFactory {
  /**
   * The call's abort scope: file and storage access end with it; fetch and exec get its signal.
   * `deadlineMs`: what was left of the call's time limit at dispatch, which caps fetch's and exec's own timeouts.
   */
  forCall(scope: CallAbort, deadlineMs: number): CallCapabilities;
  /** The exec sandbox (`commands.sandbox`), made on first use: a start that runs no command never loads it. */
  execSandbox(): Promise<ExecSandbox>;
  close(): void;
}

export interface CapabilityOptions {
  policy: EffectivePolicy;
  paths: CompiledPathPolicy;
  /** Where plugin databases live (in the state directory). */
  dataDir: string;
  /** HOME and default working directory of processes run through `ctx.exec` (a directory the server owns). */
  execHomeDir: string;
  env: NodeJS.ProcessEnv;
  /** Tests inject a resolver. */
  lookup?: Lookup;
  /** The server's own files (the path guard's `protectedPaths`): hidden from sandboxed programs too. */
  ownFiles?: readonly ProtectedPath[];
  /** bwrap to use instead of the first on PATH (tests: a file that does not exist). */
  bwrapPath?: string;
  /** Tests inject the sandbox probe. */
  sandboxProbe?: (bwrap: string | undefined) => Promise<SandboxAvailability>;
  /** Where the operator reads what a call's result must not carry (a sandbox's own error, which names server paths). */
  logger?: Logger;
}

export function createCapabilityFactory(options: CapabilityOptions): CapabilityFactory {
  const { policy, paths } = options;
  const fs = createGuardedFs(paths, { maxReadBytes: policy.filesystem.max_read_bytes, maxWriteBytes: policy.filesystem.max_write_bytes });
  const network = compileNetworkPolicy(policy.network);
  const commands = compileCommandPolicy(policy.commands, { PATH: options.env.PATH ?? "/usr/local/bin:/usr/bin:/bin" });
  const storage = createPluginStorage(options.dataDir);
  const checkCwd = (cwd: string) => fs.resolve(cwd, "read");
  // A program the tools could have written is not the program the policy names.
  const isRewritable = (file: string): Promise<boolean> => fs.resolve(file, "write").then(() => true, () => false);
  let sandbox: Promise<ExecSandbox> | undefined;
  const execSandbox = (): Promise<ExecSandbox> =>
    (sandbox ??= import("./sandbox.js").then(({ createExecSandbox }) =>
      createExecSandbox({
        mode: policy.commands.sandbox,
        searchPath: commands.searchPath,
        paths,
        ownFiles: options.ownFiles ?? [],
        homeDir: options.execHomeDir,
        userHome: options.env.HOME || homedir(),
        ...(options.bwrapPath === undefined ? {} : { bwrapPath: options.bwrapPath }),
        ...(options.sandboxProbe === undefined ? {} : { probe: options.sandboxProbe }),
      }),
    ));

  return {
    forCall(scope, deadlineMs) {
      let fetch: GuardedFetch | undefined;
      let exec: GuardedExec | undefined;
      return {
        fs: endsWithCall(fs, scope),
        storage: {
          openDatabase: (name) => {
            if (scope.aborted) throw callEnded();
            return storage.openDatabase(name);
          },
        },
        // fetch and exec load their modules (http, tls, dns, child_process) on first use: a start never pays for them.
        fetch: async (url, request) => {
          if (fetch === undefined) {
            const { createGuardedFetch } = await import("./fetch.js");
            fetch ??= createGuardedFetch(
              network,
              { maxResponseBytes: policy.network.max_response_bytes, timeoutMs: Math.min(policy.network.timeout * 1000, deadlineMs) },
              options.lookup === undefined ? { signal: scope.signal } : { signal: scope.signal, lookup: options.lookup },
            );
          }
          return fetch(url, request);
        },
        exec: async (file, args, execOptions) => {
          if (exec === undefined) {
            const [{ createGuardedExec }, sandbox] = await Promise.all([import("./exec.js"), execSandbox()]);
            exec ??= createGuardedExec(
              commands,
              { timeoutMs: Math.min(policy.commands.timeout * 1000, deadlineMs), maxOutputBytes: policy.commands.max_output_bytes },
              {
                signal: scope.signal,
                checkCwd,
                isRewritable,
                homeDir: options.execHomeDir,
                sandbox,
                onSandboxFailure: (program, message) => options.logger?.warn(`exec: the sandbox for ${program} could not be set up: ${message}`),
              },
            );
          }
          return exec(file, args, execOptions);
        },
      };
    },
    execSandbox,
    close() {
      storage.closeAll();
    },
  };
}

function callEnded(): CapabilityDeniedError {
  return new CapabilityDeniedError("CALL_ENDED", "the call has ended (cancelled, timed out or shut down): no further access");
}

/** File access that stops with the call: a plugin that ignores its signal cannot keep writing after the response. */
function endsWithCall(fs: GuardedFs, scope: CallAbort): GuardedFs {
  const guard = <A extends unknown[], R>(operation: (...args: A) => Promise<R>) => (...args: A): Promise<R> =>
    scope.aborted ? Promise.reject(callEnded()) : operation(...args);
  return {
    limits: fs.limits,
    allowedDirectories: () => fs.allowedDirectories(),
    resolve: guard((path: string, access: "read" | "write") => fs.resolve(path, access)),
    stat: guard((path: string) => fs.stat(path)),
    readBytes: guard((path: string, options?: Parameters<GuardedFs["readBytes"]>[1]) => fs.readBytes(path, options)),
    read: guard((path: string, options?: Parameters<GuardedFs["read"]>[1]) => fs.read(path, options)),
    readText: guard((path: string, options?: Parameters<GuardedFs["readText"]>[1]) => fs.readText(path, options)),
    list: guard((path: string, options?: ListOptions) =>
      fs.list(path, { signal: options?.signal === undefined ? scope.signal : AbortSignal.any([options.signal, scope.signal]) }),
    ),
    // The response of a call that ended says it was stopped: a write still under way must not land after it.
    writeFile: guard((path: string, data: string | Uint8Array, options?: Parameters<GuardedFs["writeFile"]>[2]) =>
      fs.writeFile(path, data, { ...options, signal: options?.signal === undefined ? scope.signal : AbortSignal.any([options.signal, scope.signal]) }),
    ),
    mkdir: guard((path: string) => fs.mkdir(path)),
    move: guard((from: string, to: string, options?: Parameters<GuardedFs["move"]>[2]) =>
      fs.move(from, to, { ...options, signal: options?.signal === undefined ? scope.signal : AbortSignal.any([options.signal, scope.signal]) }),
    ),
  };
}
