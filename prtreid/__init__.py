"""PRTReID on Ray: part-based multi-task re-identification, team and role for sports tracking."""

__version__ = "0.1.0"
