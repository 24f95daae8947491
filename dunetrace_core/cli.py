"""The ``dunetrace`` command."""

from __future__ import annotations

import sys

__all__ = ["main"]

USAGE = """usage: dunetrace COMMAND [options]

commands:
  version     print the installed version
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if args[0] == "version":
        from . import __version__

        print(__version__)
        return 0
    print(f"dunetrace: unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
