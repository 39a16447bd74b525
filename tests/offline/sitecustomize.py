"""Loaded by every Python process whose path holds this folder (tests that run ultralytics
or converters): any network use is recorded in $NAS_NETWORK_LOG and refused, so a test can
assert that nothing reached out, on a machine with a network as on one without."""

import os
import socket
import traceback

_LOG = os.environ.get("NAS_NETWORK_LOG")


def _refuse(what):
    def refused(*args, **kwargs):
        if _LOG:
            with open(_LOG, "a") as log:
                log.write(f"{os.getpid()} {what} {args[:2]!r}\n")
                traceback.print_stack(file=log, limit=40)
        raise OSError(f"network use refused in tests: {what}")
    return refused


if _LOG:
    socket.getaddrinfo = _refuse("getaddrinfo")
    socket.create_connection = _refuse("create_connection")
    socket.socket.connect = _refuse("connect")
    socket.socket.connect_ex = _refuse("connect_ex")
