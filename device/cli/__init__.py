"""The `safehouse` command: one subcommand module each, the entry point in main.py."""
