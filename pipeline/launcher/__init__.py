"""The launcher: starts every role as its own pinned OS process, supervises, shuts down in order."""
