"""`moeplan profile`: measure the local GPUs (or, with ``--device cpu``, the host) and set the figures beside moeplan's predictions.

torch and pynvml are imported only inside this package, and only inside the functions that need them,
so the rest of moeplan stays importable without the ``profile`` extra. Modules that compute from
numbers alone (``a2a_bytes``, ``routing``, ``stats``, ``predict``, ``calibrate``, ``results``,
``topology``, ``gpus``, ``stopping``, ``command``) never import torch; the calibration file format and
its reader are core (``moeplan.calibration``), this package only writes it (``calibrate``).
"""
