"""The command line: a thin shell over the library."""

from emoprobe.cli.main import main

__all__ = ["main"]
