"""The ``evalbot`` program: the command line, loaded without the cycle collector's passes.

Loading the command line makes hundreds of thousands of objects (classes, functions, the
models' schemas), nearly all kept until the process ends. While they are made, the collector
would pass over them again and again, finding nothing to free: a tenth of a short command's
start. It is paused while they load; they are then set aside as permanent (``gc.freeze``), so
that the collections the command itself runs look only at what it makes. (Loading leaves a few
hundred objects for the collector, about 100 KB: they are set aside too, rather than spend a
full collection, a tenth of the start again, on them.)
"""

from __future__ import annotations

import gc


def main() -> None:
    collecting = gc.isenabled()
    gc.disable()
    try:
        from bot.cli import main as run
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
    run()
