"""The `safehouse` command: the parser and small subcommands in main.py, a module per larger one."""
