/**
 * Descriptors inherited from whatever started the server and left open across exec (no
 * close-on-exec flag): Node hands every such descriptor to each program it spawns, and
 * bubblewrap passes them into its sandbox, so a program run for a tool could read or write
 * whatever they are (a client's pipe, make's jobserver, a log file). The server never uses
 * them (MCP over stdio is fds 0-2) and closes them at start. Node and libuv open their own
 * descriptors close-on-exec, which is how the two are told apart (Linux: /proc/self/fdinfo).
 */
import fs from "node:fs";

const O_CLOEXEC = 0o2000000;

export interface FdTable {
  /** Open descriptors, or undefined where they cannot be listed (no /proc). */
  list(): number[] | undefined;
  /** The descriptor's open flags, or undefined when it is gone or cannot be read. */
  flags(fd: number): number | undefined;
  close(fd: number): void;
}

/** Which descriptors to close: above stderr, not kept, flags known and without close-on-exec. */
export function inheritedToClose(entries: ReadonlyArray<{ fd: number; flags: number | undefined }>, keep: ReadonlySet<number>): number[] {
  return entries.filter((e) => e.fd > 2 && !keep.has(e.fd) && e.flags !== undefined && (e.flags & O_CLOEXEC) === 0).map((e) => e.fd);
}

export const procFdTable: FdTable = {
  list() {
    try {
      return fs
        .readdirSync("/proc/self/fd")
        .map(Number)
        .filter((fd) => Number.isSafeInteger(fd));
    } catch {
      return undefined;
    }
  },
  flags(fd) {
    try {
      const match = /^flags:\s*([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
      return match === null ? undefined : parseInt(match[1]!, 8);
    } catch {
      return undefined;
    }
  },
  close(fd) {
    fs.closeSync(fd);
  },
};

/**
 * Closes the inherited descriptors and returns them. Node's IPC channel (NODE_CHANNEL_FD, set when
 * the server is forked by a Node parent) is kept: Node itself uses it.
 */
export function closeInheritedFds(env: NodeJS.ProcessEnv, table: FdTable = procFdTable): number[] {
  const listed = table.list();
  if (listed === undefined) return [];
  const keep = new Set<number>();
  const channel = Number(env.NODE_CHANNEL_FD);
  if (env.NODE_CHANNEL_FD !== undefined && Number.isSafeInteger(channel)) keep.add(channel);
  const closing = inheritedToClose(
    listed.map((fd) => ({ fd, flags: table.flags(fd) })),
    keep,
  );
  const closed: number[] = [];
  for (const fd of closing) {
    try {
      table.close(fd);
      closed.push(fd);
    } catch {
      // Gone already (the listing's own directory descriptor, say): nothing to close.
    }
  }
  return closed;
}
