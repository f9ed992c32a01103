"""Synthetic SoccerNet-Tracking broadcast clips (frames, gt, det, gameinfo and part-label maps).

See :mod:`prtreid.data.synth.generator` for the model of the world.
"""

from prtreid.data.synth.generator import SynthConfig, clip_cameras, generate_dataset, generate_sequence

__all__ = ["SynthConfig", "clip_cameras", "generate_dataset", "generate_sequence"]
