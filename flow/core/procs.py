"""Whether a process id is in use, the one test the runtime, the metrics folder and the
detached server each need (a pid owned by another user exists too)."""

from __future__ import annotations

import os


def pid_exists(pid: int) -> bool:
    """True while ``pid`` names a process (a zombie included), whoever owns it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
