"""`python -m seqbench` and the `seqbench` command.

The first thing it does is catch SIGINT and SIGTERM (before typer, rich and torch are imported, which
takes seconds), so from here on either one is a clean stop with exit code 130 and one line, never a
traceback or the 143 of an unhandled SIGTERM (orchestration/signals.py says how).
"""

import sys


def main() -> None:
    from seqbench.orchestration.signals import ignore_interrupts, install_handlers

    try:
        install_handlers(exit_at_once=True)
        from seqbench.cli import main as cli_main

        cli_main()  # maps every outcome to an exit code itself; this catches what lands outside its try
    except KeyboardInterrupt:  # not expected (the handler exits by itself), but never a traceback
        ignore_interrupts()
        sys.stderr.write("seqbench: error: interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
