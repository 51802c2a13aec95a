/**
 * `mkdir -p` that always ends. Node's own recursive mkdir retries a directory whose parent
 * exists but which still cannot be made, and under /proc that is forever: there mkdir says
 * ENOENT for the child and EEXIST for the parent, and Node goes back and forth between the
 * two (a state directory or audit log under /proc/self, or under a link into /proc such as
 * /dev/fd, hung the start). Here each missing directory is made once, from the nearest
 * existing one down, and the first failure is thrown as it came.
 */
import { mkdir, mkdirSync, stat, statSync } from "node:fs";
import { dirname, resolve } from "node:path";

function codeOf(error: unknown): unknown {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

function isDirectorySync(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/** Creates `dir` and its missing parents, each with `mode`; an existing directory is fine. */
export function makeDirectoriesSync(dir: string, mode: number): void {
  const missing: string[] = [];
  for (let current = resolve(dir); ; ) {
    try {
      mkdirSync(current, { mode });
      break;
    } catch (error) {
      // A directory there (or a link to one) is what was asked for; a file is not.
      if (codeOf(error) === "EEXIST" && isDirectorySync(current)) break;
      const parent = dirname(current);
      if (codeOf(error) !== "ENOENT" || parent === current) throw error;
      missing.push(current);
      current = parent;
    }
  }
  for (let i = missing.length - 1; i >= 0; i--) {
    const next = missing[i]!;
    try {
      mkdirSync(next, { mode });
    } catch (error) {
      // Made by someone else meanwhile: as good as made here.
      if (!(codeOf(error) === "EEXIST" && isDirectorySync(next))) throw error;
    }
  }
}

function mkdirOnce(dir: string, mode: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((done) => mkdir(dir, { mode }, (error) => done(error ?? undefined)));
}

function isDirectory(dir: string): Promise<boolean> {
  return new Promise((done) => stat(dir, (error, stats) => done(error === null && stats.isDirectory())));
}

/** `makeDirectoriesSync` without blocking: the same steps, the same errors. */
export async function makeDirectories(dir: string, mode: number): Promise<void> {
  const missing: string[] = [];
  for (let current = resolve(dir); ; ) {
    const error = await mkdirOnce(current, mode);
    if (error === undefined) break;
    if (error.code === "EEXIST" && (await isDirectory(current))) break;
    const parent = dirname(current);
    if (error.code !== "ENOENT" || parent === current) throw error;
    missing.push(current);
    current = parent;
  }
  for (let i = missing.length - 1; i >= 0; i--) {
    const next = missing[i]!;
    const error = await mkdirOnce(next, mode);
    if (error !== undefined && !(error.code === "EEXIST" && (await isDirectory(next)))) throw error;
  }
}
