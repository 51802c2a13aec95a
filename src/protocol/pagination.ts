/**
 * Opaque, tamper-evident cursors scoped to one session: the offset is signed with a
 * key made at start, so a cursor from another session or an edited one is refused.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { ErrorCode, RpcError } from "./jsonrpc.js";

export class CursorCodec {
  private readonly key: Buffer;

  constructor(private readonly scope: string, key: Buffer = randomBytes(32)) {
    this.key = key;
  }

  encode(offset: number): string {
    const body = `${this.scope}:${offset}`;
    return `${offset}.${this.sign(body)}`;
  }

  /** Returns the offset, or throws -32602 for anything this codec did not make. */
  decode(cursor: unknown): number {
    if (typeof cursor !== "string" || cursor.length > 128) throw invalidCursor();
    const dot = cursor.indexOf(".");
    const offsetText = cursor.slice(0, dot);
    if (dot <= 0 || !/^(0|[1-9][0-9]{0,8})$/.test(offsetText)) throw invalidCursor();
    const expected = Buffer.from(this.sign(`${this.scope}:${offsetText}`));
    const given = Buffer.from(cursor.slice(dot + 1));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalidCursor();
    return Number(offsetText);
  }

  private sign(body: string): string {
    return createHmac("sha256", this.key).update(body).digest("base64url").slice(0, 22);
  }
}

function invalidCursor(): RpcError {
  return new RpcError(ErrorCode.InvalidParams, "Invalid params: unknown or invalid cursor; start again without a cursor");
}

export interface Page<T> {
  items: T[];
  nextCursor: string | undefined;
}

export function paginate<T>(all: readonly T[], cursor: unknown, pageSize: number, codec: CursorCodec): Page<T> {
  const offset = cursor === undefined ? 0 : codec.decode(cursor);
  if (offset > all.length) throw invalidCursor();
  const items = all.slice(offset, offset + pageSize);
  const next = offset + items.length;
  return { items, nextCursor: next < all.length ? codec.encode(next) : undefined };
}
