import assert from "node:assert/strict";
import { describeError, RunError, UsageError } from "../../../lib/cli/errors.ts";
import { OptionError, StartupError } from "../../../lib/mod.ts";

Deno.test("describeError gives a usage error exit 2 and one line naming the flag", () => {
  assert.deepEqual(
    describeError(new UsageError('Cannot parse "10XB": expected bytes', "--max-size")),
    { code: 2, line: 'smtpd: --max-size: Cannot parse "10XB": expected bytes' },
  );
  assert.deepEqual(describeError(new UsageError('unknown command "x"')), {
    code: 2,
    line: 'smtpd: unknown command "x"',
  });
});

Deno.test("describeError maps the server's OptionError to exit 2 with its flag", () => {
  assert.deepEqual(describeError(new OptionError("--fault", 'Cannot parse rule "x"')), {
    code: 2,
    line: 'smtpd: --fault: Cannot parse rule "x"',
  });
});

Deno.test("describeError maps run-time failures to exit 1, one line, no stack", () => {
  assert.deepEqual(
    describeError(new StartupError("cannot listen on 127.0.0.1:25: address already in use")),
    {
      code: 1,
      line: "smtpd: cannot listen on 127.0.0.1:25: address already in use",
    },
  );
  assert.deepEqual(describeError(new RunError('no message "x"')), {
    code: 1,
    line: 'smtpd: no message "x"',
  });
  assert.deepEqual(describeError(new Deno.errors.PermissionDenied("Permission denied:\n  /x")), {
    code: 1,
    line: "smtpd: Permission denied: /x",
  });
});

Deno.test("describeError flags anything else as a bug with its stack, exit 70", () => {
  const { code, line } = describeError(new TypeError("x is undefined"));
  assert.equal(code, 70);
  assert.match(line, /^smtpd: unexpected error \(a bug\): TypeError: x is undefined\n {4}at /);
  assert.deepEqual(describeError("thrown string"), {
    code: 70,
    line: "smtpd: unexpected error (a bug): thrown string",
  });
});

Deno.test("describeError: an OS error Deno has no class for (ENOSPC) is a run-time failure, exit 1", () => {
  const full = Object.assign(new Error("No space left on device (os error 28): writefile '/x'"), {
    code: "ENOSPC",
  });
  assert.deepEqual(describeError(full), {
    code: 1,
    line: "smtpd: No space left on device (os error 28): writefile '/x'",
  });
  // A code that is no errno name does not make a bug a world error.
  assert.equal(describeError(Object.assign(new Error("x"), { code: "ERR_BUG" })).code, 70);
});
