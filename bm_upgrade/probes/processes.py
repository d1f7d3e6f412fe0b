"""A host's processes with their whole command lines, read the same way on every host.

``ps`` prints a byte it takes for non-printable in the login's locale as ``?``: over SSH the
locale is often ``C``, so a kit root or tc-config path with non-ASCII letters never matches in
its output, and a running node would read as stopped. :data:`PROCESS_LIST` reads each
process's ``/proc/<pid>/cmdline`` instead, byte for byte, with POSIX ``grep``, ``tr`` and
``sed`` in three processes, whatever the locale.
"""

from __future__ import annotations

PROCESS_LIST = (
    "grep -a -H '' /proc/[0-9]*/cmdline 2>/dev/null | tr '\\000' ' ' "
    "| sed -n 's|^/proc/\\([0-9][0-9]*\\)/cmdline:|\\1 |p'"
)
"""Shell: one line ``<pid> <args joined by spaces>`` per process that has a command line
(kernel threads have none), like ``ps -ww -eo pid=,args=`` but locale-free."""
