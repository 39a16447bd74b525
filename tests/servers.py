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
    port = _free_port()
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(root / "data"), "-A", "trust",
                    "-U", "nas"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-w", "-l",
                    str(root / "log"), "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
                    "start"], check=True, capture_output=True)

    def stop():
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m",
                        "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)

    return f"postgresql://nas@127.0.0.1:{port}/postgres", stop
