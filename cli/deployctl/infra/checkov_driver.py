"""checkov started ahead of its job: run by checkov's own Python, never imported by deployctl.

``PYTHON checkov_driver.py CHECKOV_SCRIPT`` imports checkov (its runners and check registries: most
of a scan's time) at once, then waits for one job on stdin: a JSON list of checkov's arguments on
one line. It runs checkov's console entry in this process exactly as ``CHECKOV_SCRIPT ARGS`` would
(``sys.exit(Checkov().run())``, the same ``sys.argv`` and ``sys.path[0]``, stdin empty) and exits
with its code; the report goes to stdout as the script's would. End of input without a job: exit 0
without scanning. deployctl starts it (:class:`deployctl.infra.gate.CheckovDriver`) before
``terraform plan`` and hands it the plan JSON's scan when ``show -json`` is done.

Standard library only before checkov is imported: this file runs in checkov's environment.
"""

import os
import sys


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: checkov_driver.py CHECKOV_SCRIPT", file=sys.stderr)
        return 2
    script = sys.argv[1]
    # what Python sets for the console script: its own (resolved) directory first, not this file's
    sys.path[0] = os.path.dirname(os.path.realpath(script))
    sys.argv = [script]

    import json
    import warnings

    from checkov.main import Checkov  # the slow part, done while terraform plans

    line = sys.stdin.readline()
    if not line.strip():
        return 0  # nobody wants a scan (the plan gate's verdict was cached, or the plan failed)
    args = json.loads(line)
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        print("checkov_driver: the job is not a list of arguments", file=sys.stderr)
        return 2
    # stdin as in a plain run (deployctl gives checkov /dev/null)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.argv = [script, *args]
    # the console script's own body
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=SyntaxWarning)
        sys.exit(Checkov(args).run())


if __name__ == "__main__":
    sys.exit(main())
