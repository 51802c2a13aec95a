/**
 * The server's logger. It writes to stderr (never stdout, which belongs to the
 * protocol) and lets the protocol layer subscribe, so that server events can also
 * reach the client as `notifications/message`. Callers pass data that is already
 * redacted: the logger formats, it does not judge.
 */
import { printable, printableJson } from "./text.js";

export const LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === "string" && (LOG_LEVELS as readonly string[]).includes(value);
}

export function levelRank(level: LogLevel): number {
  return LOG_LEVELS.indexOf(level);
}

export interface LogRecord {
  level: LogLevel;
  logger: string;
  message: string;
  data?: Record<string, unknown>;
  /**
   * For the operator only (a stack trace, with the server's own file paths): written to stderr,
   * never handed to subscribers, so it never reaches the client (the spec: no internal details in
   * log messages).
   */
  detail?: string;
}

export type LogSink = (record: LogRecord) => void;

/** `detail`: for stderr only (see LogRecord.detail). */
export interface Logger {
  readonly name: string;
  debug(message: string, data?: Record<string, unknown>, detail?: string): void;
  info(message: string, data?: Record<string, unknown>, detail?: string): void;
  notice(message: string, data?: Record<string, unknown>, detail?: string): void;
  warn(message: string, data?: Record<string, unknown>, detail?: string): void;
  error(message: string, data?: Record<string, unknown>, detail?: string): void;
  child(name: string): Logger;
}

export interface LogHub {
  /** The minimum level written to stderr. */
  stderrLevel: LogLevel;
  subscribe(sink: LogSink): () => void;
  logger(name: string): Logger;
}

/**
 * Writes one line per record: `mcp-secure-local[name] level: message {data}`. A record is
 * always one line: control characters in it (a plugin's text may hold line breaks or
 * terminal escapes) are written as visible escapes, so no record can forge another or
 * drive the operator's terminal.
 */
export function stderrSink(write: (line: string) => void = (line) => process.stderr.write(line)): LogSink {
  return (record) => {
    // The data is JSON, whose backslashes are its own escapes: printableJson keeps them single.
    const data = record.data === undefined ? "" : ` ${printableJson(safeStringify(record.data))}`;
    const detail = record.detail === undefined ? "" : ` ${printable(record.detail)}`;
    write(`${printable(`mcp-secure-local[${record.logger}] ${record.level}: ${record.message}`)}${data}${detail}\n`);
  };
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "";
  } catch {
    return "[unserializable]";
  }
}

export function createLogHub(options: { stderrLevel?: LogLevel; stderr?: LogSink } = {}): LogHub {
  const sinks = new Set<LogSink>();
  const toStderr = options.stderr ?? stderrSink();
  const hub: LogHub = {
    stderrLevel: options.stderrLevel ?? "info",
    subscribe(sink) {
      sinks.add(sink);
      return () => sinks.delete(sink);
    },
    logger(name) {
      return makeLogger(name);
    },
  };
  function emit(record: LogRecord): void {
    if (levelRank(record.level) >= levelRank(hub.stderrLevel)) toStderr(record);
    if (sinks.size === 0) return;
    const shared = record.detail === undefined ? record : withoutDetail(record);
    for (const sink of sinks) {
      try {
        sink(shared);
      } catch {
        // A failing subscriber must not break logging for the others.
      }
    }
  }
  function makeLogger(name: string): Logger {
    const log = (level: LogLevel) => (message: string, data?: Record<string, unknown>, detail?: string) => {
      const record: LogRecord = data === undefined ? { level, logger: name, message } : { level, logger: name, message, data };
      if (detail !== undefined) record.detail = detail;
      emit(record);
    };
    return {
      name,
      debug: log("debug"),
      info: log("info"),
      notice: log("notice"),
      warn: log("warning"),
      error: log("error"),
      child: (sub) => makeLogger(`${name}.${sub}`),
    };
  }
  return hub;
}

function withoutDetail(record: LogRecord): LogRecord {
  const { detail: _detail, ...shared } = record;
  return shared;
}

/** A logger that drops everything; for unit tests of modules that log. */
export const silentLogger: Logger = {
  name: "silent",
  debug() {},
  info() {},
  notice() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
