"""One video end to end (frames -> detect -> embed -> track -> tracklets), used by the CLI and Ray."""
