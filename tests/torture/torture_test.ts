/**
 * The full torture suite (issue 8), run by `make torture` through
 * `tests/torture/run.sh`; the same table runs scaled down in `make test`.
 */

import { registerTortureTests } from "./suite.ts";

registerTortureTests("full");
