/**
 * Connecting to one of a name's addresses the way browsers do (Happy Eyeballs, RFC 8305 §5):
 * the addresses in turn with the families interleaved, the next attempt started as soon as the
 * one before fails or once it has gone `delayMs` without connecting, the first connection kept
 * and every other attempt closed. Tried strictly one after another, an address that silently
 * drops packets (a broken IPv6 route, common behind some routers) held every request until its
 * time limit although the next address would have answered at once.
 *
 * The addresses come already checked: this only chooses among them. The caller checks the
 * winner's peer again before sending anything.
 */
import { asError } from "../../util/call-abort.js";

/** RFC 8305's recommended "Connection Attempt Delay" (and Node's own autoSelectFamily default). */
export const ATTEMPT_DELAY_MS = 250;

export interface Closable {
  destroy(): void;
}

export interface Connected<S> {
  socket: S;
  /** The address this socket was opened to. */
  address: string;
}

/**
 * The addresses with their families alternating, starting with the first one's family (the
 * resolver's preferred one), each family keeping its own order.
 */
export function interleaveFamilies(addresses: readonly string[]): string[] {
  const first = addresses[0];
  if (first === undefined) return [];
  const isV6 = (address: string): boolean => address.includes(":");
  const preferred = addresses.filter((address) => isV6(address) === isV6(first));
  const other = addresses.filter((address) => isV6(address) !== isV6(first));
  const out: string[] = [];
  for (let i = 0; i < Math.max(preferred.length, other.length); i++) {
    if (i < preferred.length) out.push(preferred[i]!);
    if (i < other.length) out.push(other[i]!);
  }
  return out;
}

/**
 * Opens a connection to the first of `addresses` that accepts one (in the order given; see
 * `interleaveFamilies`). `open` must reject, closing what it opened, when the signal it is given
 * aborts. Rejects with the last attempt's error when every attempt failed, and with `signal`'s
 * reason when it aborts first.
 */
export function connectFirst<S extends Closable>(
  addresses: readonly string[],
  open: (address: string, signal: AbortSignal) => Promise<S>,
  signal: AbortSignal,
  delayMs: number = ATTEMPT_DELAY_MS,
): Promise<Connected<S>> {
  return new Promise<Connected<S>>((resolve, reject) => {
    if (signal.aborted) {
      reject(asError(signal.reason));
      return;
    }
    if (addresses.length === 0) {
      reject(new RangeError("no address to connect to"));
      return;
    }
    const attempts: AbortController[] = [];
    let next = 0;
    let running = 0;
    let settled = false;
    let lastError: unknown;
    let timer: NodeJS.Timeout | undefined;

    const finish = (why: string): void => {
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      for (const attempt of attempts) attempt.abort(new Error(why));
    };
    const onAbort = (): void => {
      if (settled) return;
      finish("the connection was aborted");
      reject(asError(signal.reason));
    };
    const start = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      if (settled || next >= addresses.length) return;
      const address = addresses[next++]!;
      const attempt = new AbortController();
      attempts.push(attempt);
      running++;
      // The next address gets its turn if this one has not answered by then.
      if (next < addresses.length) timer = setTimeout(start, delayMs);
      open(address, attempt.signal).then(
        (socket) => {
          running--;
          if (settled) {
            socket.destroy();
            return;
          }
          // This attempt won: it must not be aborted with the losers.
          attempts.splice(attempts.indexOf(attempt), 1);
          finish("another address answered first");
          resolve({ socket, address });
        },
        (error: unknown) => {
          running--;
          if (settled) return;
          lastError = error;
          if (next < addresses.length) start();
          else if (running === 0) {
            finish("every address failed");
            reject(asError(lastError));
          }
        },
      );
    };
    signal.addEventListener("abort", onAbort, { once: true });
    start();
  });
}
