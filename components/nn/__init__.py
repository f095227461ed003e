"""Neural-network components on PyTorch (the ``fedweave[nn]`` extra).

``params`` is torch-free so that a conf validates where torch is not installed; ``device``,
``build`` and ``models`` import torch and are loaded only when a task runs.
"""
