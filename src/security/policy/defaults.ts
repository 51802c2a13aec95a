/**
 * Default values: the ones a policy file may leave out, and the built-in policy the
 * server runs with when no `--policy` is given (no network, files only in the
 * state directory's workspace, shells and interpreters blocked).
 */
import * as path from "node:path";
import type {
  AuditPolicy,
  CommandsPolicy,
  EffectivePolicy,
  FilesystemPolicy,
  LimitsPolicy,
  NetworkPolicy,
  ToolsPolicy,
} from "../policy-types.js";
import { PolicyError } from "./errors.js";

const MIB = 1024 * 1024;

/** The seed's deny list: credentials and secrets wherever they are. */
export const DEFAULT_DENIED_PATHS: readonly string[] = [
  "**/.ssh/**",
  "**/.aws/**",
  "**/.gnupg/**",
  "**/*.pem",
  "**/*.key",
  "**/.env",
  "**/.env.*",
  "**/secrets/**",
  "**/.git/config",
];

/**
 * Files inside an allowed directory that a write turns into code run without anyone asking:
 * by git (hooks, config filters and aliases), by the shell at start-up, by direnv on `cd`, by
 * an editor or an MCP client opening the folder (tasks, settings, server lists), by a dev
 * container at creation, or first on PATH. Reading them stays as the rest of the policy says.
 */
export const DEFAULT_WRITE_DENIED_PATHS: readonly string[] = [
  "**/.git/**",
  "**/.husky/**",
  "**/.gitconfig",
  "**/.config/git/**",
  "**/.bashrc",
  "**/.bash_profile",
  "**/.bash_login",
  "**/.bash_logout",
  // Sourced by the stock .bashrc of Debian and Ubuntu.
  "**/.bash_aliases",
  "**/.profile",
  "**/.zshrc",
  "**/.zshenv",
  "**/.zprofile",
  "**/.zlogin",
  "**/.zlogout",
  "**/.config/fish/**",
  "**/.envrc",
  "**/.npmrc",
  "**/.yarnrc",
  "**/.yarnrc.yml",
  "**/.pnpmfile.cjs",
  "**/.mcp.json",
  // Claude Code keeps its user and per-project MCP servers here, in the home directory.
  "**/.claude.json",
  "**/.cursor/**",
  "**/.claude/**",
  "**/.vscode/**",
  "**/.devcontainer/**",
  "**/.config/autostart/**",
  "**/.config/systemd/**",
  "**/.local/bin/**",
  // Shells' other start-up files, and the X and PAM session environments.
  "**/.bashrc.d/**",
  "**/.kshrc",
  "**/.cshrc",
  "**/.tcshrc",
  "**/.login",
  "**/.xprofile",
  "**/.xinitrc",
  "**/.xsession",
  "**/.xsessionrc",
  "**/.pam_environment",
  "**/.config/environment.d/**",
  "**/.tmux.conf",
  "**/.config/tmux/**",
  // Editors that run their configuration as code.
  "**/.vimrc",
  "**/.gvimrc",
  "**/.exrc",
  "**/.vim/**",
  "**/.config/nvim/**",
  "**/.emacs",
  "**/.emacs.d/**",
  "**/.config/emacs/**",
  // Python runs the import lines of .pth files, and these modules, at every start.
  "**/site-packages/*.pth",
  "**/dist-packages/*.pth",
  "**/sitecustomize.py",
  "**/usercustomize.py",
  // Other version control, and hook managers.
  "**/.hg/**",
  "**/.githooks/**",
  "**/.pre-commit-config.yaml",
  "**/lefthook.yml",
  "**/lefthook.yaml",
  "**/.lefthook.yml",
  "**/.lefthook.yaml",
  "**/lefthook-local.yml",
  // MCP clients and coding agents (Linux, macOS and Windows homes): a server added there runs at the client's next start.
  "**/.config/Claude/**",
  "**/Library/Application Support/Claude/**",
  "**/AppData/Roaming/Claude/**",
  "**/.config/Code/User/**",
  "**/.config/Code - Insiders/User/**",
  "**/.config/VSCodium/User/**",
  "**/.config/Cursor/User/**",
  "**/Library/Application Support/Code/User/**",
  "**/Library/Application Support/Cursor/User/**",
  "**/AppData/Roaming/Code/User/**",
  "**/AppData/Roaming/Cursor/User/**",
  "**/.codex/**",
  "**/.gemini/**",
  "**/.codeium/**",
  "**/.continue/**",
  "**/.windsurf/**",
  "**/.config/zed/**",
];

/** The seed's blocked network clients. */
export const SEED_BLOCKED_COMMANDS: readonly string[] = [
  "curl",
  "wget",
  "ssh",
  "scp",
  "rsync",
  "nc",
  "netcat",
  "telnet",
  "ftp",
  "sftp",
];

/**
 * Shells and inline interpreters: each can run any other command (`bash -c curl ...`),
 * so a block list that leaves them out blocks nothing.
 */
export const SHELLS_AND_INTERPRETERS: readonly string[] = [
  "sh",
  "bash",
  "zsh",
  "dash",
  "fish",
  "ksh",
  "csh",
  "tcsh",
  "python",
  "python3",
  "perl",
  "ruby",
  "node",
  "php",
  "powershell",
  "pwsh",
  "osascript",
];

export const PRIVILEGE_COMMANDS: readonly string[] = ["sudo", "su", "doas", "pkexec"];

/**
 * Programs that run other programs (`env sh -c …`, `find -exec`, `awk 'BEGIN{system()}'`,
 * the dynamic loader itself): as open as a shell. A block list is only as strong as this
 * list is complete, which is why the built-in default allows no command at all.
 */
export const COMMAND_RUNNERS: readonly string[] = [
  "env", "xargs", "nohup", "nice", "ionice", "timeout", "setsid", "stdbuf", "unshare", "chroot", "busybox",
  "find", "awk", "gawk", "mawk", "sed", "git", "make", "gdb", "vim", "vi", "script", "run-parts", "watch",
  "lua", "tclsh", "expect", "ld.so", "ld-linux.so.2", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
  // Wrappers that run the command line they are given (`flock lock bash -c …`, `taskset 1 sh`),
  // mostly from util-linux, procps and debugging tools installed by default, and `ed`, whose
  // `!` runs a shell command read from its input.
  "flock", "taskset", "chrt", "prlimit", "setpriv", "nsenter", "runuser", "sg", "newgrp", "capsh",
  "systemd-run", "dbus-run-session", "ssh-agent", "strace", "ltrace", "valgrind", "perf", "time",
  "parallel", "unbuffer", "cgexec", "firejail", "bwrap", "ed",
];

/**
 * Programs that are not on the block list (an operator may well allow them), yet run any command
 * they are told to through their own arguments, configuration or input: `rg --pre CMD`,
 * `sqlite3` with `.shell CMD`, `tar --to-command=CMD`, `zip -TT CMD`, a pager's `!CMD`, package
 * managers' scripts, `gcc -wrapper`. Whoever picks their arguments runs anything.
 */
export const ARGUMENT_RUNNERS: readonly string[] = [
  "rg", "sqlite3", "tar", "zip", "unzip", "less", "more", "man", "npm", "npx", "yarn", "pnpm", "pip", "pip3",
  "cargo", "go", "gcc", "cc", "clang", "docker", "podman", "kubectl",
];

export const DEFAULT_BLOCKED_COMMANDS: readonly string[] = [
  ...SEED_BLOCKED_COMMANDS,
  ...SHELLS_AND_INTERPRETERS,
  ...PRIVILEGE_COMMANDS,
  ...COMMAND_RUNNERS,
];

/** Calls per minute: 60 for any tool, and the seed's values for web search and the bug tracker. */
export const DEFAULT_RATE_LIMITS: Readonly<Record<string, number>> = {
  default: 60,
  // The seed's: a search engine answers an address that searches often with a bot check.
  web_search: 20,
  init_bugtracker: 5,
  add_bug: 60,
  get_bug: 120,
  update_bug: 60,
  close_bug: 60,
  list_bugs: 60,
  search_bugs_global: 30,
};

export const DEFAULT_RATE_LIMIT = 60;

/** Values that apply when a policy file leaves a key out (allow-lists excepted: those are empty). */
export const DEFAULTS = {
  network: {
    max_response_bytes: 5 * MIB,
    timeout: 10,
  },
  filesystem: {
    max_read_bytes: 10 * MIB,
    max_write_bytes: 10 * MIB,
  },
  commands: {
    timeout: 30,
    max_output_bytes: 1 * MIB,
    // Sandboxed where bubblewrap works; elsewhere (macOS, no bwrap) as before, with a warning at start.
    sandbox: "auto",
  },
  tools: {
    timeout: 30,
  },
  limits: {
    max_argument_bytes: 1 * MIB,
    max_depth: 32,
    max_string_length: 100_000,
    max_array_length: 10_000,
  } satisfies LimitsPolicy,
  audit: {
    enabled: true,
    log_level: "info",
    fsync: "always",
    fsync_interval_ms: 100,
    checkpoint_every: 1000,
    rotate_bytes: 64 * MIB,
    rotate_daily: false,
  } satisfies Omit<AuditPolicy, "log_file">,
} as const;

/**
 * Characters that would turn an inserted directory name into glob syntax for
 * picomatch. A directory holding one cannot be made into a glob safely, so it is
 * refused rather than matched loosely (which could make a denial miss).
 */
export const GLOB_SPECIAL = /[*?[\]{}()|\\]/;

/** The audit log's default place. */
export function defaultAuditLogFile(stateDir: string): string {
  return path.join(stateDir, "audit", "audit.log");
}

export function defaultPolicySource(): string {
  return "built-in default policy";
}

/** The policy used when no `--policy` is given. `stateDir` must be absolute. */
export function defaultPolicy(stateDir: string): EffectivePolicy {
  const source = defaultPolicySource();
  if (!path.isAbsolute(stateDir)) {
    throw new PolicyError("POLICY_INVALID", source, [
      { key: "", message: `the state directory must be an absolute path, got "${stateDir}"` },
    ]);
  }
  if (GLOB_SPECIAL.test(stateDir)) {
    throw new PolicyError("POLICY_INVALID", source, [
      {
        key: "",
        message: `the state directory "${stateDir}" contains a glob character (* ? [ ] { } ( ) | \\); choose a directory without one`,
      },
    ]);
  }
  const network: NetworkPolicy = {
    allowed_ranges: [],
    allowed_endpoints: [],
    blocked_ports: [],
    allow_dns: false,
    dns_allowlist: [],
    ...DEFAULTS.network,
  };
  const filesystem: FilesystemPolicy = {
    allowed_paths: [`${stateDir.replace(/\/+$/, "")}/workspace/**`],
    denied_paths: [...DEFAULT_DENIED_PATHS],
    write_denied_paths: [...DEFAULT_WRITE_DENIED_PATHS],
    ...DEFAULTS.filesystem,
  };
  // No built-in tool runs a command: the default allows none (the block list stays for anyone who adds `allowed`).
  const commands: CommandsPolicy = { blocked: [...DEFAULT_BLOCKED_COMMANDS], allowed: [], ...DEFAULTS.commands };
  const tools: ToolsPolicy = {
    deny: [],
    rate_limits: { ...DEFAULT_RATE_LIMITS, default: DEFAULT_RATE_LIMIT },
    timeout: DEFAULTS.tools.timeout,
    timeouts: {},
  };
  return {
    version: "1.0",
    network,
    filesystem,
    commands,
    tools,
    limits: { ...DEFAULTS.limits },
    audit: { ...DEFAULTS.audit, log_file: defaultAuditLogFile(stateDir) },
    server: {},
  };
}
