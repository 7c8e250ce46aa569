"""SQLite with one writer at a time, queued on a lock (see base.py)."""
