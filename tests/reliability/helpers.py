"""Run `wm` in-process: the real `worldmodel.cli.main.main` (same error handling as the console script)
without paying a torch import per call."""

from __future__ import annotations


def run_main(*args: object) -> int:
    """`wm ARGS` in this process; returns the exit code (output goes to the captured streams)."""
    from worldmodel.cli.main import main

    try:
        main([str(a) for a in args])
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0
