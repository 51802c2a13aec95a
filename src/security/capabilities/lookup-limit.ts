/**
 * Name lookups kept from taking libuv's thread pool. `dns.lookup` (getaddrinfo) blocks one of
 * the pool's threads (4 by default) until the system resolver answers, which with an
 * unreachable name server takes tens of seconds, whatever the call's deadline; file I/O runs on
 * the same threads, the audit log's syncs among them, so a few hung lookups would hold every
 * call. At most `max` lookups run at once, the rest wait in order, and calls asking for the same
 * name while it is being looked up (or waits to be) share the answer. A lookup whose callers have
 * all stopped waiting before its turn does not run.
 */

import { asError } from "../../util/call-abort.js";

export type Resolve<T> = (hostname: string) => Promise<T>;
export type LimitedResolve<T> = (hostname: string, signal?: AbortSignal) => Promise<T>;

export const MAX_LOOKUPS_IN_FLIGHT = 2;

export function limitLookups<T>(resolve: Resolve<T>, max: number = MAX_LOOKUPS_IN_FLIGHT): LimitedResolve<T> {
  let running = 0;
  const waiting: Array<() => void> = [];
  /** Per name: the shared answer, and how many callers still wait for it (one without a signal never stops). */
  const inFlight = new Map<string, { promise: Promise<T>; waiting: number }>();

  const release = (): void => {
    const next = waiting.shift();
    if (next === undefined) running--;
    else next(); // the slot passes on
  };

  /** Resolves once a slot is this lookup's. */
  const slot = (): Promise<void> => {
    if (running < max) {
      running++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => waiting.push(resolve));
  };

  const lookUp = async (hostname: string): Promise<T> => {
    await slot();
    try {
      // Every caller left while it waited (its entry is in inFlight until it settles): the slot
      // passes on. Run for no one, a backlog of hung names that calls gave up on (a wildcard
      // allows many) would hold back every later call.
      if (inFlight.get(hostname)?.waiting === 0) throw new Error("the lookup was abandoned: every call waiting for it ended");
      return await resolve(hostname);
    } finally {
      release();
    }
  };

  return (hostname, signal) => {
    // A call that has ended waits for nothing: a lookup started for it would only take a slot,
    // and its failure would reject a promise no one holds (an unhandled rejection ends the process).
    if (signal?.aborted === true) return Promise.reject(abortReason(signal));
    let shared = inFlight.get(hostname);
    if (shared === undefined) {
      // One lookup per name, waited for by every caller: a caller whose call ends stops waiting
      // (below), the lookup goes on for the others.
      shared = { promise: lookUp(hostname).finally(() => inFlight.delete(hostname)), waiting: 0 };
      inFlight.set(hostname, shared);
    }
    const joined = shared;
    joined.waiting++;
    return signal === undefined ? joined.promise : untilAborted(joined.promise, signal, () => joined.waiting--);
  };
}

function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new Error("the lookup was abandoned: the call ended");
}

/** `promise`, or a rejection as soon as `signal` fires (the lookup itself goes on for whoever else waits); `leave` runs then. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal, leave: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      leave();
      reject(abortReason(signal));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(asError(error));
      },
    );
  });
}
