"""Django's SQLite backend, with writers queued on a lock instead of SQLite's busy handler.

SQLite lets one transaction write at a time. A second writer normally sleeps in SQLite's
busy handler, which backs off up to 100 ms between tries, so under concurrent load a
request can wait far longer than the commit it waits for. Here every write transaction
first takes the database's writer lock: threads of a process queue on a threading lock
(woken the moment it is free) and processes on an flock() of `<database>-writer.lock`
(polled every millisecond at most). SQLite's own lock is then always free when a
transaction begins, and its busy handler never runs for writers that go through Django.

Transactions begin lazily: `atomic()` takes the lock and issues BEGIN IMMEDIATE just
before its first statement, not when the block is entered, so Python work done before
the first query (building a decision, say) does not hold other writers up. Statements
that write outside a transaction (autocommit) hold the lock for their own duration.
Opening a connection (its `init_command` sets the journal mode) and closing one (the
last connection to close checkpoints the WAL under an exclusive file lock) take the
lock too: without it, a connection opened while another closed met SQLite's lock.
In-memory databases have no file and are left as they are.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time

from django.db import OperationalError
from django.db.backends.sqlite3 import base

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")
_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


class WriterLock:
    """Exclusive right to write one database file, for one connection (one thread)."""

    def __init__(self, database_path: str, timeout: float):
        self.path = os.path.abspath(database_path) + "-writer.lock"
        self.timeout = timeout
        with _process_locks_guard:
            self._threads = _process_locks.setdefault(self.path, threading.Lock())
        self._fd: int | None = None
        self.held = False

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        if not self._threads.acquire(timeout=self.timeout):
            raise OperationalError(f"database is locked: no write turn within {self.timeout} s (this process)")
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            pause = 0.0001
            while True:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise OperationalError(
                            f"database is locked: another process kept writing for {self.timeout} s") from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.001)
        except BaseException:
            self._threads.release()
            raise
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._threads.release()

    def close(self) -> None:
        self.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class QueuedCursor(base.SQLiteCursorWrapper):
    """Begins the connection's pending transaction, or takes the writer lock around an
    autocommit write, before running a statement."""

    wrapper: DatabaseWrapper

    def execute(self, query, params=None):
        with self.wrapper.write_turn(query):
            return super().execute(query, params)

    def executemany(self, query, param_list):
        with self.wrapper.write_turn(query):
            return super().executemany(query, param_list)


class _HeldTurn:
    """Holds the writer lock for one statement, a connection's opening or its closing."""

    def __init__(self, lock: WriterLock):
        self.lock = lock

    def __enter__(self):
        self.lock.acquire()

    def __exit__(self, *exc):
        self.lock.release()


class _NoTurn:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None


_NO_TURN = _NoTurn()


class DatabaseWrapper(base.DatabaseWrapper):
    writer_lock: WriterLock | None = None
    _begin_pending = False

    def get_connection_params(self):
        params = super().get_connection_params()
        # How long a writer waits for its turn; SQLite's own busy timeout stays `timeout`.
        self.writer_lock_timeout = float(params.pop("writer_lock_timeout", params.get("timeout", 5)))
        return params

    def get_new_connection(self, conn_params):
        if self.is_in_memory_db():
            return super().get_new_connection(conn_params)
        if self.writer_lock is None:
            self.writer_lock = WriterLock(self.settings_dict["NAME"], self.writer_lock_timeout)
        with _HeldTurn(self.writer_lock):
            return super().get_new_connection(conn_params)

    def create_cursor(self, name=None):
        cursor = self.connection.cursor(factory=QueuedCursor)
        cursor.wrapper = self
        return cursor

    def _start_transaction_under_autocommit(self):
        if self.writer_lock is None:
            return super()._start_transaction_under_autocommit()
        self._begin_pending = True  # BEGIN IMMEDIATE goes out with the first statement

    def write_turn(self, query: str):
        """What must happen before `query` runs: begin the pending transaction, or hold the
        writer lock around a write made outside any transaction."""
        lock = self.writer_lock
        if lock is None or lock.held:
            return _NO_TURN
        if self._begin_pending:
            lock.acquire()
            try:
                self.connection.execute(f"BEGIN {self.transaction_mode or 'IMMEDIATE'}")
            except BaseException:
                lock.release()
                raise
            self._begin_pending = False
            return _NO_TURN
        if not self.connection.in_transaction and query.lstrip()[:7].upper().startswith(_WRITES):
            return _HeldTurn(lock)
        return _NO_TURN

    def _end_transaction(self):
        self._begin_pending = False
        if self.writer_lock is not None:
            self.writer_lock.release()

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._end_transaction()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._end_transaction()

    def _close(self):
        lock = self.writer_lock
        try:
            if lock is not None and self.connection is not None and not lock.held:
                with _HeldTurn(lock):
                    return super()._close()
            return super()._close()
        finally:
            if lock is not None:
                lock.close()
                self.writer_lock = None
            self._begin_pending = False
