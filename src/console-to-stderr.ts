/**
 * Imported first by the entry points: routes every `console.*` call to stderr before
 * any other module is evaluated (ES modules evaluate their imports in order), so that
 * nothing, ours or a dependency's, can write to stdout, which belongs to the protocol.
 *
 * It also makes stderr safe to lose. stderr is for people, and a client may ignore it,
 * down to closing its end of the pipe: the next write then fails with EPIPE, which Node
 * reports as an 'error' event on process.stderr, and an 'error' event nobody listens to
 * ends the process. A lost log must not end the session (an answer never sent, an
 * audit log never closed): the error is taken here, and later writes go nowhere.
 */
import { Console } from "node:console";

globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr });

process.stderr.on("error", () => {
  // Nothing to report it to: stderr is the operator's channel, and it is gone.
});
