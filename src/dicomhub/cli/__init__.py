"""The command line: a thin layer over the same core functions the servers call."""
