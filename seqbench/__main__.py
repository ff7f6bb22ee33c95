"""`python -m seqbench` and the `seqbench` command.

The first thing it does is catch SIGINT and SIGTERM (before typer, rich and torch are imported, which
takes seconds), so from here on either one is a clean stop with exit code 130 and one line, never a
traceback or the 143 of an unhandled SIGTERM.
"""

import sys


def main() -> None:
    from seqbench.sweep.signals import ignore_interrupts, install_handlers

    install_handlers()
    try:
        from seqbench.cli import main as cli_main
    except KeyboardInterrupt:  # during the import of the command line itself
        ignore_interrupts()
        sys.stderr.write("seqbench: error: interrupted\n")
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
