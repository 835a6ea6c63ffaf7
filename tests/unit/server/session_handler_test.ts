import assert from "node:assert/strict";
import { replyFrom } from "../../../lib/server/session_handler.ts";
import type { RejectReply } from "../../../lib/server/options.ts";

Deno.test("replyFrom makes a valid reply of whatever a JavaScript callback returns", () => {
  const odd = (r: Record<string, unknown>) => replyFrom(r as unknown as RejectReply);
  assert.deepEqual(odd({ code: 550, text: 5 }), { code: 550, enhanced: "5.0.0", lines: ["5"] });
  assert.deepEqual(odd({ code: "550", enhanced: 5, text: null }), {
    code: 451,
    enhanced: "4.0.0",
    lines: ["Rejected"],
  });
  assert.deepEqual(odd({ code: 553, enhanced: "5.1.3", text: "a\r\nb" }), {
    code: 553,
    enhanced: "5.1.3",
    lines: ["a b"],
  });
  // An enhanced code of the other class is replaced by the reply's own.
  assert.equal(odd({ code: 450, enhanced: "5.1.1" }).enhanced, "4.0.0");
});
