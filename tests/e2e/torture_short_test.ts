/**
 * The short torture suite (issue 8) inside `make test`: the cases of
 * `make torture`, scaled down (tests/torture/suite.ts).
 */

import { registerTortureTests } from "../torture/suite.ts";

registerTortureTests("short");
