"""Shared by the kill-and-resume tests: start a command, SIGKILL it mid-run."""

import os
import signal
import subprocess
import time


def kill_after_file(cmd, path, env=None, timeout=240) -> None:
    """Run ``cmd`` in its own process group and SIGKILL the group once ``path`` exists
    (its first checkpoint): what a crash or an out-of-memory kill leaves behind."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
