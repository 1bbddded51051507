"""The click layer, one module per group of commands.

These modules only parse options, call the core modules (imported inside the
command functions so `deployctl --help` stays fast) and print results. Domain
errors are turned into messages and exit codes by deployctl.cli.
"""
