/**
 * Imported first by the entry points: routes every `console.*` call to stderr before
 * any other module is evaluated (ES modules evaluate their imports in order), so that
 * nothing, ours or a dependency's, can write to stdout, which belongs to the protocol.
 */
import { Console } from "node:console";

globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr });
