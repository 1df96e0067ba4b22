"""The ``rulewatch`` command line: commands, pre-flight checks, terminal output."""
