"""Sub-commands of the `genrec` CLI, one module each.

Each module defines `register(subparsers)`, which adds its parser and sets
`func=<callable(args) -> int>` as the parser default. cli.py lists the modules.
"""
