/**
 * The effective policy: the YAML policy's own shape (snake_case keys, seed-compatible)
 * with every default applied and every `${VAR}` / `~` expanded. Guards take the part
 * they need; nothing downstream re-reads the YAML.
 */

export interface NetworkEndpoint {
  host: string;
  ports: number[];
  description?: string;
}

export interface NetworkPolicy {
  /** CIDR ranges that connections may go to (after DNS). Empty: none. */
  allowed_ranges: string[];
  /** Hosts that may be reached on the listed ports, whatever range they resolve to. */
  allowed_endpoints: NetworkEndpoint[];
  blocked_ports: number[];
  allow_dns: boolean;
  /** Host names that may be resolved (exact, or `*.example.com` for one label). */
  dns_allowlist: string[];
  /** Response body bytes at most, per request. */
  max_response_bytes: number;
  /** Whole-exchange time limit per request, in seconds. */
  timeout: number;
}

export interface FilesystemPolicy {
  /** Allowed roots as globs (`/data/**`), `${VAR}` and `~` expanded. Empty: nothing allowed. */
  allowed_paths: string[];
  /** Denied globs; denied wins over allowed and matches case-insensitively. */
  denied_paths: string[];
  /**
   * Globs denied to writes only (reads stay as allowed_paths/denied_paths say): files
   * that run code without anyone asking (git hooks, shell start-up files, editor tasks,
   * MCP client configurations). Matched like denied_paths.
   */
  write_denied_paths: string[];
  /** Read at most this many bytes per read call. */
  max_read_bytes: number;
  /** Write at most this many bytes per write call. */
  max_write_bytes: number;
}

export interface CommandsPolicy {
  /** Executable names or absolute paths that may never run. */
  blocked: string[];
  /** When present, only these executables (names or absolute paths) may run. */
  allowed?: string[];
  /** Seconds before the process group is killed. */
  timeout: number;
  max_output_bytes: number;
  /**
   * Whether programs run under bubblewrap (no network, own PID namespace, host read-only, the
   * server's files hidden): `required` refuses to run them otherwise, `auto` sandboxes when bwrap
   * is usable, `off` never.
   */
  sandbox: "auto" | "required" | "off";
}

export interface ToolsPolicy {
  /** Tool names or globs that are exposed. Absent: every tool. */
  allow?: string[];
  /** Tool names or globs that are never exposed; deny wins. */
  deny: string[];
  /** Calls per minute: `default` plus per-tool values. */
  rate_limits: { default: number } & Record<string, number>;
  /** Deadline per call in seconds. */
  timeout: number;
  /** Per-tool deadlines in seconds. */
  timeouts: Record<string, number>;
}

export interface LimitsPolicy {
  /** Serialized `arguments` bytes at most. */
  max_argument_bytes: number;
  max_depth: number;
  max_string_length: number;
  max_array_length: number;
}

export type AuditFsync = "always" | "batch";

export interface AuditPolicy {
  /** false turns the audit log off (benchmarks only; the default policy has it on). */
  enabled: boolean;
  log_file: string;
  log_level: string;
  fsync: AuditFsync;
  /** With `batch`: fsync at most every this many milliseconds. */
  fsync_interval_ms: number;
  /** A signed checkpoint every this many entries (and at shutdown). */
  checkpoint_every: number;
  /** Rotate when the file passes this many bytes (0: never by size). */
  rotate_bytes: number;
  /** Rotate when the UTC day changes. */
  rotate_daily: boolean;
  /** Ed25519 private key (PEM); absent: `keys/audit-ed25519.pem` in the state directory. */
  signing_key?: string;
  /** Kept for seed compatibility; all fields are always recorded. */
  include?: string[];
}

export interface ServerSettings {
  /** The session's project folder for plugins that act on one (bug tracker). */
  project_path?: string;
}

export interface EffectivePolicy {
  version: string;
  network: NetworkPolicy;
  filesystem: FilesystemPolicy;
  commands: CommandsPolicy;
  tools: ToolsPolicy;
  limits: LimitsPolicy;
  audit: AuditPolicy;
  server: ServerSettings;
}
