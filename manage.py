#!/usr/bin/env python
"""Django's command-line utility for AEGIS."""
import os
import sys


def _quiet_closed_cursor(unraisable) -> None:
    """A query interrupted by an error (a DecryptionError, say) has its cursor finalized after
    Django closed the connection; that complaint is noise next to the real error."""
    if (getattr(unraisable.object, "__name__", "") == "cursor_iter"
            and type(unraisable.exc_value).__name__ in {"ProgrammingError", "InterfaceError"}):
        return
    sys.__unraisablehook__(unraisable)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.settings")
    from django.core.management import execute_from_command_line

    sys.unraisablehook = _quiet_closed_cursor
    try:
        execute_from_command_line(sys.argv)
    except Exception as error:
        from governance.fields import DecryptionError

        if not isinstance(error, DecryptionError):
            raise
        # Stored data no configured key decrypts: say so plainly, as a CommandError would.
        sys.stderr.write(f"CommandError: {error}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
