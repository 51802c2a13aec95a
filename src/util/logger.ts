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
}

export type LogSink = (record: LogRecord) => void;

export interface Logger {
  readonly name: string;
  debug(message: string, data?: Record<string, unknown>): void;
  info(message: string, data?: Record<string, unknown>): void;
  notice(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
  error(message: string, data?: Record<string, unknown>): void;
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
    write(`${printable(`mcp-secure-local[${record.logger}] ${record.level}: ${record.message}`)}${data}\n`);
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
    for (const sink of sinks) {
      try {
        sink(record);
      } catch {
        // A failing subscriber must not break logging for the others.
      }
    }
  }
  function makeLogger(name: string): Logger {
    const log = (level: LogLevel) => (message: string, data?: Record<string, unknown>) =>
      emit(data === undefined ? { level, logger: name, message } : { level, logger: name, message, data });
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
