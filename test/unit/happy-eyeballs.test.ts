/**
 * Choosing among a name's checked addresses (RFC 8305): families interleaved, the next attempt
 * when one fails or stays silent past the delay, the first connection kept and the others closed.
 * Sockets are stand-ins: what is checked is which attempts start, when, and what is closed.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { connectFirst, interleaveFamilies } from "../../src/security/capabilities/happy-eyeballs.js";

class FakeSocket {
  destroyed = false;
  constructor(readonly address: string) {}
  destroy(): void {
    this.destroyed = true;
  }
}

interface Attempt {
  address: string;
  signal: AbortSignal;
  succeed: () => FakeSocket;
  fail: (error: Error) => void;
}

/** An `open` whose attempts the test settles by hand; an aborted attempt rejects, as a real one does. */
function manualOpen(): { open: (address: string, signal: AbortSignal) => Promise<FakeSocket>; attempts: Attempt[] } {
  const attempts: Attempt[] = [];
  const open = (address: string, signal: AbortSignal): Promise<FakeSocket> =>
    new Promise<FakeSocket>((resolve, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason as Error), { once: true });
      attempts.push({
        address,
        signal,
        succeed: () => {
          const socket = new FakeSocket(address);
          resolve(socket);
          return socket;
        },
        fail: reject,
      });
    });
  return { open, attempts };
}

const tick = (ms = 0): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

void describe("interleaveFamilies", () => {
  test("alternates the families from the first address's, each in its own order", () => {
    assert.deepEqual(interleaveFamilies(["2001:db8::1", "2001:db8::2", "2001:db8::3", "192.0.2.1", "192.0.2.2"]), [
      "2001:db8::1",
      "192.0.2.1",
      "2001:db8::2",
      "192.0.2.2",
      "2001:db8::3",
    ]);
    assert.deepEqual(interleaveFamilies(["192.0.2.1", "192.0.2.2", "2001:db8::1"]), ["192.0.2.1", "2001:db8::1", "192.0.2.2"]);
    assert.deepEqual(interleaveFamilies(["192.0.2.1", "192.0.2.2"]), ["192.0.2.1", "192.0.2.2"]);
    assert.deepEqual(interleaveFamilies([]), []);
  });
});

void describe("connectFirst", () => {
  test("an address that stays silent does not hold the connection: the next starts after the delay and the first to connect wins", async () => {
    const { open, attempts } = manualOpen();
    const connecting = connectFirst(["2001:db8::1", "192.0.2.1"], open, new AbortController().signal, 30);
    await tick(5);
    assert.deepEqual(
      attempts.map((attempt) => attempt.address),
      ["2001:db8::1"],
      "one attempt at a time while the delay runs",
    );
    await tick(60);
    assert.deepEqual(
      attempts.map((attempt) => attempt.address),
      ["2001:db8::1", "192.0.2.1"],
    );
    const socket = attempts[1]!.succeed();
    const connected = await connecting;
    assert.equal(connected.socket, socket);
    assert.equal(connected.address, "192.0.2.1");
    assert.equal(attempts[0]!.signal.aborted, true, "the silent attempt is closed");
    assert.equal(attempts[1]!.signal.aborted, false, "the winner is not");
  });

  test("a failed attempt starts the next at once, without waiting for the delay", async () => {
    const { open, attempts } = manualOpen();
    const connecting = connectFirst(["192.0.2.1", "192.0.2.2"], open, new AbortController().signal, 60_000);
    attempts[0]!.fail(Object.assign(new Error("refused"), { code: "ECONNREFUSED" }));
    await tick();
    assert.equal(attempts.length, 2);
    attempts[1]!.succeed();
    assert.equal((await connecting).address, "192.0.2.2");
  });

  test("when every attempt fails, the last error; a socket that connects after the winner is closed", async () => {
    const { open, attempts } = manualOpen();
    const failing = connectFirst(["192.0.2.1", "192.0.2.2"], open, new AbortController().signal, 10);
    await tick(30);
    attempts[1]!.fail(new Error("second"));
    attempts[0]!.fail(new Error("first, last to fail"));
    await assert.rejects(failing, /first, last to fail/);

    const late = manualOpen();
    // An open that ignores its signal: its socket arrives after another attempt won.
    const lateSocket = new FakeSocket("192.0.2.1");
    const stubborn = (address: string, signal: AbortSignal): Promise<FakeSocket> =>
      address === "192.0.2.1" ? new Promise((resolve) => setTimeout(() => resolve(lateSocket), 40)) : late.open(address, signal);
    const racing = connectFirst(["192.0.2.1", "192.0.2.2"], stubborn, new AbortController().signal, 5);
    await tick(15);
    late.attempts[0]!.succeed();
    assert.equal((await racing).address, "192.0.2.2");
    assert.equal(lateSocket.destroyed, false);
    await tick(60);
    assert.equal(lateSocket.destroyed, true, "the loser's socket is closed when it arrives");
  });

  test("the caller's abort ends every attempt and rejects with its reason", async () => {
    const { open, attempts } = manualOpen();
    const controller = new AbortController();
    const connecting = connectFirst(["2001:db8::1", "192.0.2.1", "192.0.2.2"], open, controller.signal, 10);
    await tick(25);
    assert.ok(attempts.length >= 2);
    controller.abort(new Error("deadline"));
    await assert.rejects(connecting, /deadline/);
    await tick(30);
    assert.ok(
      attempts.every((attempt) => attempt.signal.aborted),
      "every attempt closed",
    );
    assert.equal(attempts.length < 4, true);
    await assert.rejects(connectFirst(["192.0.2.1"], open, controller.signal), /deadline/, "already aborted: no attempt");
    await assert.rejects(connectFirst([], open, new AbortController().signal), /no address/);
  });
});
