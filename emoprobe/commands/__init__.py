"""Command groups of the CLI that grew past a few options, one module each."""
