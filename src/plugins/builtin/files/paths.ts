/** Paths the files plugin builds from a checked real path: plain string joins, no file system. */

/** `relative` (a name, or names joined by `/`; "" for the directory itself) under `dir`. */
export function under(dir: string, relative: string): string {
  if (relative === "") return dir;
  return dir.endsWith("/") ? `${dir}${relative}` : `${dir}/${relative}`;
}

/** A path for a message: JSON-quoted (no control character gets through raw), a long one cut. */
export function quoted(path: string): string {
  return JSON.stringify(path.length > 300 ? `${path.slice(0, 300)}…` : path);
}
