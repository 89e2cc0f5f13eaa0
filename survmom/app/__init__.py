"""The application layer: the command line and the commands behind it."""
