"""safehouse.device: config, event model, the alarm core, the core loop, the daemon and the CLI."""

__version__ = "0.1.0"
