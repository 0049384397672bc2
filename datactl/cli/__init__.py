"""The datactl command line: thin commands over the library (``datactl.cli.entry`` is the entry point; ``datactl.cli.app`` the command tree)."""
