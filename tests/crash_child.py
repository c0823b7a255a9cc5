"""A child process for the real-SIGKILL tests in ``test_crash.py`` (not a test module itself).

``python tests/crash_child.py run OUT MODEL_DIR`` runs the tiny-model main job of ``test_pipeline.py``
into OUT (the deliberation judge the stand-in that gives both labels on a random model's text), so the
parent can kill it with SIGKILL wherever it is and run it again.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main(argv: list[str]) -> None:
    kind, out, model_dir = argv
    if kind != "run":
        raise SystemExit(f"unknown child kind {kind!r}")
    from test_deliberation_run import _ParityJudge
    from test_pipeline import _killable_run_config

    from thinksafe.deliberation.run import DeliberationRun
    from thinksafe.pipeline import run_main

    DeliberationRun.judge = lambda self, name, **options: _ParityJudge()
    run_main(_killable_run_config(out, model_dir), progress=False)


if __name__ == "__main__":
    main(sys.argv[1:])
