"""Everything that runs on Ray; the only package of the project that imports ``ray``.

* :mod:`prtreid.distributed.runtime`: start a local Ray or join a cluster; map storage URIs to Ray.
* :mod:`prtreid.distributed.train`: multi-task training on Ray Train (DDP, checkpoints in storage,
  fault tolerance, resumption).

Submodules are imported on demand so that ``import prtreid.distributed`` stays cheap.
"""
