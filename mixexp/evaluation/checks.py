"""Checks of the ``eval`` group (sets, severities, corruptions, rescaling) before anything runs."""

from __future__ import annotations

from mixexp.data.evalsets import CORRUPTIONS, EVAL_SETS, IMAGENET_C_CROPS, SEVERITIES
from mixexp.errors import one_of, require
from mixexp.evaluation.rescaling import RESCALING_MEANS


def check_eval(cfg) -> None:
    ev, dataset = cfg.eval, cfg.dataset.name
    for kind in ("shift", "ood"):
        for name in ev[kind]:
            one_of(f"eval.{kind}", name, [n for n, s in EVAL_SETS.items() if s.kind == kind])
            base = EVAL_SETS[name].base
            require(base is None or base == dataset, f"eval.{kind}", name,
                    f"{name} is labelled with the classes of {base}; train with dataset={base}")
    require(len(ev.severities) > 0 and all(v in SEVERITIES for v in ev.severities), "eval.severities",
            list(ev.severities), "use severities from 1..5")
    for name in ev.corruptions:
        one_of("eval.corruptions", name, CORRUPTIONS)
    one_of("eval.imagenet_c_crop", ev.imagenet_c_crop, IMAGENET_C_CROPS)
    one_of("eval.rescaling_mean", ev.rescaling_mean, RESCALING_MEANS)
    require(not ev.rescaled or cfg.mixer.name == "mixup", "eval.rescaled", ev.rescaled,
            f"needs a mixup-trained run (mixer=mixup), not mixer={cfg.mixer.name}")
