/**
 * Who a process is, beyond its pid. Pids are reused: after a reboot, in a container whose
 * server is always PID 1, or by any process once the old one is gone. On Linux a process
 * is also named by its start time (field 22 of /proc/<pid>/stat, clock ticks since boot)
 * and the boot it runs in (/proc/sys/kernel/random/boot_id). Without /proc (macOS, the
 * BSDs) only the pid is known, and liveness is kill(pid, 0).
 */
import fs from "node:fs/promises";
import { errnoOf } from "./errors.js";

export interface ProcessIdentity {
  pid: number;
  /** Clock ticks since boot; undefined without /proc. */
  startTime?: string;
  /** The kernel's boot id; undefined without /proc. */
  bootId?: string;
  /**
   * The PID namespace (the inode of /proc/self/ns/pid): pids of another namespace (another
   * container) cannot be judged from this one. Undefined without /proc.
   */
  pidNs?: string;
}

export interface ProcessStat {
  startTime: string;
  /** Exited but not yet reaped (state Z or X): alive for kill(pid, 0), yet gone. */
  exited: boolean;
}

/** The process facts the lock needs, injectable so that tests can stand in for another host. */
export interface ProcessHost {
  /** This process: its pid and, where /proc says, its start time and the boot id. */
  self(): Promise<ProcessIdentity>;
  /** True when a process with this pid exists. */
  isAlive(pid: number): boolean;
  /** Start time and state of a process; undefined when /proc cannot tell (none, hidden, gone). */
  statOf(pid: number): Promise<ProcessStat | undefined>;
}

/** True when a process with this pid exists (EPERM: it exists but is another user's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoOf(err) === "EPERM";
  }
}

/**
 * State (field 3) and start time (field 22) of a /proc/<pid>/stat line. Field 2, the
 * command name in parentheses, may itself hold spaces and parentheses, so the fields are
 * counted from the last ")".
 */
export function parseProcStat(text: string): ProcessStat | undefined {
  const close = text.lastIndexOf(")");
  if (close < 0) return undefined;
  const fields = text.slice(close + 1).trim().split(/\s+/);
  const state = fields[0];
  const startTime = fields[22 - 3];
  if (state === undefined || startTime === undefined || !/^\d+$/.test(startTime)) return undefined;
  return { startTime, exited: state === "Z" || state === "X" || state === "x" };
}

async function readProc(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, "utf8");
  } catch {
    return undefined;
  }
}

async function procStatOf(pid: number): Promise<ProcessStat | undefined> {
  const text = await readProc(`/proc/${pid}/stat`);
  return text === undefined ? undefined : parseProcStat(text);
}

// Neither changes while the process runs: read once.
let selfIdentity: Promise<ProcessIdentity> | undefined;

async function readSelf(): Promise<ProcessIdentity> {
  const [stat, boot, ns] = await Promise.all([
    procStatOf(process.pid),
    readProc("/proc/sys/kernel/random/boot_id"),
    fs.readlink("/proc/self/ns/pid").catch(() => undefined),
  ]);
  const bootId = boot?.trim();
  // Both or neither: a start time means little without the boot it counts from.
  if (stat === undefined || bootId === undefined || !/^[0-9a-f-]{1,64}$/i.test(bootId)) return { pid: process.pid };
  const pidNs = /^pid:\[(\d{1,20})\]$/.exec(ns ?? "")?.[1];
  return pidNs === undefined ? { pid: process.pid, startTime: stat.startTime, bootId } : { pid: process.pid, startTime: stat.startTime, bootId, pidNs };
}

export const nodeProcessHost: ProcessHost = {
  self: () => (selfIdentity ??= readSelf()),
  isAlive: processAlive,
  statOf: procStatOf,
};
