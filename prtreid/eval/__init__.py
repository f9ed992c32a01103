"""Evaluation: re-id mAP/CMC, team and role metrics, tracking HOTA."""
