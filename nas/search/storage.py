"""Where a study lives, and how trials left unfinished by a dead process are recovered.

* ``RUN/study.db`` (default): SQLite in write-ahead-log mode, one search at a time (the
  run lock);
* ``postgresql://...`` or any Optuna RDB URL: several workers on several hosts, with
  Optuna's heartbeats (a trial silent for ``NAS_HEARTBEAT_GRACE_S`` seconds is failed by the
  next worker that looks, and queued again);
* ``journal:FILE``: several workers on one machine, through Optuna's journal file.

Any number of processes may open or create one study together: a new SQLite file comes into
being whole (:func:`sqlite_storage`), a journal file is created by appending, and only a
search creates either; whatever only reads a run (``nas report``, ``nas export``) finds a
missing file an error (``open_storage(url)`` without ``create``). Before a search trains
anything, :func:`check_storage` refuses a file it could not write and a database server
that does not answer within ``NAS_CONNECT_TIMEOUT_S`` seconds.

A process killed mid-trial leaves it RUNNING. :func:`recover` fails such trials once
their process is known to be gone (the run lock says so for the default storage; for
shared ones, the trial's ``worker`` attribute names a dead process of this host, or its
heartbeat went stale) and queues their parameters again, up to ``MAX_RETRY`` times. All
through Optuna's public API: ``Study.tell`` on a trial number, ``enqueue_trial``,
``fail_stale_trials``.

A storage that cannot be written (a full disk, a file size limit, a read-only file or file
system, a lost database server) is one :class:`~nas.errors.RunError` naming the storage
(:func:`storage_errors`), never a traceback: every commit is atomic, so the trials completed
before it stay, and rerunning the command continues the study. A journal file whose last
line was cut short by such a failure is repaired when a search opens it
(:func:`repair_journal`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterator, Optional

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from ..errors import NasError, RunError

__all__ = ["open_storage", "sqlite_storage", "journal_storage", "check_storage", "worker_id",
           "recover", "requeue", "MAX_RETRY", "HEARTBEAT_S", "GRACE_S", "CONNECT_TIMEOUT_S",
           "storage_file", "storage_location", "storage_name", "storage_failure",
           "storage_errors", "repair_journal", "study_display"]

# No heartbeat for GRACE_S seconds: the worker is dead. NAS_HEARTBEAT_GRACE_S overrides it
# (tests shorten it; on a busy cluster lengthen it).
GRACE_S = max(2, int(os.environ.get("NAS_HEARTBEAT_GRACE_S", "20")))
HEARTBEAT_S = max(1, GRACE_S // 4)  # seconds between a running trial's heartbeats
# A database server that has not answered in this many seconds is refused (tests shorten it).
CONNECT_TIMEOUT_S = max(1, int(os.environ.get("NAS_CONNECT_TIMEOUT_S", "10")))
MAX_RETRY = 3
WORKER_ATTR = "worker"


def worker_id() -> str:
    """``host:pid`` of this process, stored on every trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def sqlite_storage(path, create: bool = False) -> optuna.storages.RDBStorage:
    """A run's own SQLite study, in write-ahead-log mode with ``synchronous=NORMAL``.

    Why WAL: in SQLite's default mode every commit waits for two fsyncs, and Optuna commits
    every suggestion and attribute on its own (about 90 per trial here): 330 ms of a trial
    against 140 ms in WAL mode (``experiments/bench/search.py``). A commit still survives
    the process being killed (what resume needs); only an OS crash can lose the last
    commits, and it never corrupts the file. Readers (``nas report``, optuna-dashboard)
    open it as usual.

    Args:
        path: the database file.
        create: make the file (and its directory) when it does not exist, atomically
            (:func:`_create_sqlite`); without it a missing file is an error, so that
            readers never create one.

    Raises:
        RunError: the file does not exist and ``create`` is False.
    """
    path = Path(path).resolve()
    if not path.exists():
        if not create:
            raise _missing(path)
        _create_sqlite(path)

    def connect():  # SQLAlchemy's `creator`: every pooled connection gets the pragmas
        connection = sqlite3.connect(str(path), check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")  # a no-op on files made here
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    import sqlalchemy.exc

    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(f"sqlite:///{path}",
                                              engine_kwargs={"creator": connect})
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError):
            # A file that another program (optuna-dashboard started first) is creating
            # with Optuna's own, non-atomic steps: its schema is complete a moment later.
            if attempt == 2:
                raise
            time.sleep(0.2)


def _create_sqlite(path: Path) -> None:
    """Bring a study database into being at ``path`` whole, or keep the one another process
    made meanwhile.

    Why: Optuna creates its tables and stamps its schema version in separate transactions,
    so processes opening one new file together could each find it empty and some of them
    fail (``UNIQUE constraint failed: alembic_version.version_num``, ``table studies already
    exists``); optuna-dashboard and other readers open it beyond our control. The schema is
    built (by Optuna itself) in a private file of the same directory, switched to WAL, and
    hard-linked to ``path``: a link never replaces an existing name, so every opener sees
    no file or a complete one, and the first link wins.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    os.close(fd)

    def private():
        # A rollback journal, not WAL: every commit is in the file itself (a WAL file beside
        # the private copy would not travel with the link). No fsync per commit (0.7 s for
        # Optuna's schema): the private copy is synced once, whole, before it is linked.
        connection = sqlite3.connect(name, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=MEMORY")
        connection.execute("PRAGMA synchronous=OFF")
        return connection

    try:
        storage = optuna.storages.RDBStorage(f"sqlite:///{name}",
                                             engine_kwargs={"creator": private})
        storage.remove_session()
        storage.engine.dispose()
        with contextlib.closing(sqlite3.connect(name)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")  # recorded in the file's header
        with open(name, "rb") as f:
            os.fsync(f.fileno())
        try:
            os.link(name, path)
        except FileExistsError:
            pass  # another process linked its copy first: that one is the study
    finally:
        for leftover in (name, name + "-wal", name + "-shm", name + "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def _missing(path: Path) -> RunError:
    return RunError(f"{path} does not exist: no study was started there (nas search "
                    "creates it)")


def journal_storage(path, create: bool = False) -> optuna.storages.JournalStorage:
    """A study in Optuna's journal file ``path`` (several workers on one machine).

    Any number of processes may open a new file together: Optuna creates it by opening it
    for appending, and writes every log under its lock.

    Args:
        path: the journal file.
        create: make the file (and its directory) when it does not exist; without it a
            missing file is an error, so that readers never create one.

    Raises:
        RunError: the file does not exist and ``create`` is False.
    """
    from optuna.storages.journal import JournalFileBackend

    path = Path(path)
    if not path.exists():
        if not create:
            raise _missing(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def open_storage(url: str, create: bool = False):
    """An Optuna storage for ``url``: ``journal:PATH``, ``sqlite:///PATH`` or an RDB URL
    (PostgreSQL and the like, with heartbeats and a connect timeout of
    ``NAS_CONNECT_TIMEOUT_S`` seconds).

    ``create``: a missing ``journal:``/``sqlite:///`` file is created (by the search only);
    otherwise it is a :class:`RunError` and nothing is written.
    """
    if url.startswith("journal:"):
        return journal_storage(url[len("journal:"):], create)
    if url.startswith("sqlite:///"):
        return sqlite_storage(url[len("sqlite:///"):], create)
    url, engine = _server(url)
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.8
        warnings.simplefilter("ignore", ExperimentalWarning)
        # Optuna 5 names the heartbeat callback apart from failed trials; Optuna 4 does not.
        if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):
            retry = {"heartbeat_stale_trial_callback":
                     optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)}
        else:
            retry = {"failed_trial_callback":
                     optuna.storages.RetryFailedTrialCallback(max_retry=MAX_RETRY)}
        return optuna.storages.RDBStorage(url, engine_kwargs=engine,
                                          heartbeat_interval=HEARTBEAT_S,
                                          grace_period=GRACE_S, **retry)


def _server(url: str):
    """``(url, SQLAlchemy engine arguments)`` of a database server's URL: PostgreSQL's
    driver named, and a connect timeout where the driver takes one (without it, a host
    that drops packets holds a connection attempt for minutes)."""
    engine: dict = {}
    if url.startswith("postgresql://"):  # SQLAlchemy's default driver differs by version
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.split("://")[0] in ("postgresql+psycopg", "postgresql+psycopg2"):  # libpq's name
        engine["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    return url, engine


def check_storage(url: str) -> None:
    """Refuse a storage the search could not use, before anything is trained or written.

    A file (``journal:``, ``sqlite:///``) must be readable and writable, or its directory
    creatable; a database server must accept a connection within ``NAS_CONNECT_TIMEOUT_S``
    seconds (no table is created here).

    Raises:
        RunError: the storage and why, in one line.
    """
    path = storage_file(url)
    if path is not None:
        path = Path(os.path.abspath(path))
        if path.exists():
            if not path.is_file() or not os.access(path, os.R_OK | os.W_OK):
                raise RunError(f"cannot use the study file {path}: not a file this user can "
                               "read and write")
            return
        parent = next(p for p in path.parents if p.exists())
        if not parent.is_dir():  # e.g. -o naming a file
            raise RunError(f"cannot create the study file {path}: {parent} is a file, not a "
                           "directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise RunError(f"cannot create the study file {path}: {parent} is not a "
                           "directory this user can write in")
        return
    import sqlalchemy

    server, options = _server(url)
    try:
        engine = sqlalchemy.create_engine(server, **options)
        try:
            engine.connect().close()
        finally:
            engine.dispose()
    except Exception as e:  # noqa: BLE001 (a bad URL, a missing driver, a refused connection)
        why = storage_failure(e, url) or f"{e.__class__.__name__}: {e}"
        raise RunError(f"cannot reach the study's database {storage_name(url)} (connect "
                       f"timeout {CONNECT_TIMEOUT_S} s): {' '.join(why.split())}") from None


def storage_file(url: str) -> Optional[Path]:
    """The file a ``journal:`` or ``sqlite:///`` URL names (None for a database server)."""
    for prefix in ("journal:", "sqlite:///"):
        if url.startswith(prefix):
            return Path(url[len(prefix):])
    return None


def storage_location(url: str):
    """``(prefix, file)`` of a ``journal:``/``sqlite:///`` URL, None for a database server
    (for settings stored independently of the working directory, :mod:`nas.config`)."""
    for prefix in ("journal:", "sqlite:///"):
        if url.startswith(prefix) and len(url) > len(prefix):
            return prefix, url[len(prefix):]
    return None


def storage_name(url: str) -> str:
    """The storage for messages: its file, or its URL without the password."""
    path = storage_file(url)
    if path is not None:
        return str(path)
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (not a URL SQLAlchemy reads: show no part of it)
        return url.split("@")[-1]


def study_display(url: str) -> str:
    """A storage URL to show: as given, with a database password hidden."""
    return url if storage_file(url) is not None else storage_name(url)


def storage_failure(error: BaseException, url: str) -> Optional[str]:
    """Why the storage ``url`` failed, if ``error`` or what caused it is a database or file
    error of that storage (the reason in words); None for any other error.

    Optuna wraps a failed commit in ``StorageInternalError`` ("invalid data ... exceeding max
    length", whatever the cause) and may raise again while failing the trial, so the whole
    ``__cause__`` / ``__context__`` chain is searched for the real one.
    """
    from sqlalchemy.exc import DatabaseError

    own = storage_file(url)
    seen, todo, found = set(), [error], None
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, sqlite3.DatabaseError):  # the most precise: SQLite's own words
            name = getattr(e, "sqlite_errorname", "")
            return f"{e}" + (f" ({name})" if name else "")
        if isinstance(e, BrokenPipeError):  # stdout piped into `head`: not the storage
            return None
        if isinstance(e, OSError):
            name = e.filename
            if name is None or (own is not None and str(name).startswith(str(own))):
                return e.strerror or str(e)
            return None  # another file: not the storage's failure
        if isinstance(e, DatabaseError) and found is None:
            found = str(e.orig if e.orig is not None else e).strip().splitlines()[0]
        todo += [e.__cause__, e.__context__]
    return found


@contextlib.contextmanager
def storage_errors(url: str, doing: str = "write") -> Iterator[None]:
    """Turn a failure of the storage ``url`` inside the block into one :class:`RunError`."""
    try:
        yield
    except NasError:
        raise
    except Exception as e:
        reason = storage_failure(e, url)
        if reason is None:
            raise
        if doing == "read":
            raise RunError(f"cannot read the study in {storage_name(url)}: {reason}") from None
        raise RunError(f"cannot write the study in {storage_name(url)}: {reason} (a full disk, "
                       "a file size limit, a read-only file?); the trials completed so far "
                       "are kept: rerun the same command to continue once it can be written"
                       ) from None


def repair_journal(path) -> bool:
    """Cut a last line left incomplete by a failed write (a full disk) off a journal file.

    Optuna appends every log as one line under the journal's lock; a line without its
    newline was never complete, and a later append would join it into a line no reader can
    parse. Returns whether the file was repaired.
    """
    from optuna.storages.journal import JournalFileSymlinkLock

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()  # blocks while a writer appends
    try:
        with path.open("rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return False
            f.seek(0)
            data = f.read()
            f.truncate(data.rfind(b"\n") + 1)
            return True
    finally:
        lock.release()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _is_dead(trial: FrozenTrial, host: str, worker: Optional[str]) -> bool:
    owner = trial.user_attrs.get(WORKER_ATTR)
    if not isinstance(owner, str):
        return False
    if worker is not None:
        return owner == worker
    name, _, pid = owner.rpartition(":")
    return name == host and pid.isdigit() and not _pid_alive(int(pid))


def requeue(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Queue ``trial``'s parameters again (with ``retry_of``), unless it has been retried
    ``MAX_RETRY`` times or never got as far as its parameters. Returns whether it was."""
    retries = trial.user_attrs.get("retries", 0)
    # A trial popped from the queue and killed before its suggestions has its parameters
    # only as the fixed values it was queued with.
    params = trial.params or trial.system_attrs.get("fixed_params") or {}
    if not params or not isinstance(retries, int) or retries >= MAX_RETRY:
        return False
    attrs = {"retry_of": trial.number, "retries": retries + 1}
    if "preset" in trial.user_attrs:
        attrs["preset"] = trial.user_attrs["preset"]
    study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=False)
    return True


def recover(study: optuna.Study, all_running: bool = False,
            worker: Optional[str] = None) -> int:
    """Fail the RUNNING trials of dead workers and queue them again; returns how many.

    Args:
        study: the study.
        all_running: every RUNNING trial is a dead process's (the caller holds the run
            lock of a storage only it uses).
        worker: only this worker's trials (``host:pid``), known to be dead (the parent of
            local workers saw it exit). Otherwise: workers of this host whose process is
            gone, and, on storages with heartbeats, trials whose heartbeat is stale.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # no-op without heartbeats
    host = socket.gethostname()
    count = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not (all_running or _is_dead(t, host, worker)):
            continue
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError):  # finished or failed meanwhile by its owner
            continue
        requeue(study, t)
        count += 1
    return count
