"""Throwaway servers for tests: a PostgreSQL cluster on a free loopback port.

Uses Debian's ``postgresql`` package (`make test` installs it when run as root); tests
that need it are skipped where it is absent.
"""

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

INITDB = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres():
    """Start a server (trust auth); returns ``(url, stop)``."""
    bin_dir = INITDB[-1].parent
    root = Path(tempfile.mkdtemp(prefix="nas-pg-"))  # not under pytest's 0700 tmp dirs
    as_user = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(root / "data"), "-A", "trust",
                    "-U", "nas"], check=True, capture_output=True)
    # A free port can be taken before the server binds it (another test process, a
    # client's outgoing connection): then the start fails and another port is tried.
    for _ in range(5):
        port = _free_port()
        started = subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-w", "-l",
             str(root / "log"), "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
             "start"], capture_output=True, text=True)
        if started.returncode == 0:
            break
    else:
        raise RuntimeError(f"postgres did not start: {started.stderr}\n"
                           f"{(root / 'log').read_text()[-2000:]}")

    def stop():
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m",
                        "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)

    return f"postgresql://nas@127.0.0.1:{port}/postgres", stop
