import type { EffectivePolicy } from "../policy-types.js";
import { canonicalJson, sha256Hex } from "../../util/canonical-json.js";

/** The hash that identifies a policy in the audit log: over its canonical JSON. */
export function policySha256(policy: EffectivePolicy): string {
  return sha256Hex(canonicalJson(policy));
}
