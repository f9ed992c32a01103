"""Data layer: SoccerNet readers and writers, the synthetic generator, the re-id crop store."""

from prtreid.data.soccernet import find_sequences, load_sequence, read_sequence, write_sequence
from prtreid.data.types import PARTS, ROLES, TEAMS, MotTable, SeqInfo, Sequence, TrackInfo

__all__ = [
    "PARTS", "ROLES", "TEAMS", "MotTable", "SeqInfo", "Sequence", "TrackInfo",
    "find_sequences", "load_sequence", "read_sequence", "write_sequence",
]
