"""Ablations for "does Patronus learn local concepts on shapes within a CPU budget?"

Each variant is a list of ``--set`` overrides on top of a base preset. A run trains from scratch,
then measures on the held-out split:

- per attribute, the best single prototype's AUROC (``dimension-auroc``);
- reconstruction agreement from s alone, fresh noise (``reconstruction-agreement``), judged by
  an attribute classifier trained once per dataset configuration and cached;
- prototype redundancy: mean pairwise cosine of the prototype vectors and of the activation
  profiles s over the test images, and how many prototypes each attribute has (AUROC >= 0.9).

The ``oracle`` variants condition on the judge's own calls (the ``oracle-judge`` conditioner,
registered for the length of the command only, as the plugin ``experiments-local-concepts``).

Reproduces docs/local-concepts.md: "The ablation table" (one variant per row, seed 0), "The recipe
over three seeds" (``final``, seeds 0 1 2, 500 images, DDIM 50) and the 1400-step row of "Training
time". Usage::

    python experiments/local_concepts.py VARIANT [VARIANT ...] --seed 0 [--threads 1]
    python experiments/local_concepts.py final --seed 0 1 2 --recon-images 500 --recon-steps 50
    python experiments/local_concepts.py --table            # the collected results

Everything is written under ``--out`` (default ``runs/lc``): one run directory per variant and
seed, the cached judges in ``judges/``, and one JSON object per run appended to ``results.jsonl``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from protodiff.contracts import Condition, Conditioner
from protodiff.provenance import code_version

#: Where the results go unless ``--out`` says otherwise (the path docs/local-concepts.md implies).
OUT = Path("runs/lc")
#: The plugin the ``oracle-judge`` conditioner is registered as, for the length of one command.
PLUGIN = "experiments-local-concepts"

BASE = "patronus-shapes"
SHORT = ["train.steps=1000", "train.checkpoint_every=1000", "train.log_every=50"]
LONG = ["train.steps=2000", "train.checkpoint_every=2000", "train.log_every=50"]
ALIGNED = ["data.layout=aligned"]
#: A 2-layer encoder whose 7 px receptive field is smaller than a mark (8 px at 32 px).
RF7 = [
    "model.conditioner.encoder.channels=[32,128]",
    "model.conditioner.encoder.kernel_sizes=[3,3]",
    "model.conditioner.encoder.strides=[2,1]",
    "model.conditioner.encoder.paddings=[1,0]",
]
#: A 3-layer encoder with an 11 px receptive field.
RF11 = [
    "model.conditioner.encoder.channels=[32,64,128]",
    "model.conditioner.encoder.kernel_sizes=[3,3,3]",
    "model.conditioner.encoder.strides=[2,1,1]",
    "model.conditioner.encoder.paddings=[1,0,0]",
]
DECOR = ["model.conditioner.prototype_layer.decorrelation_weight=0.1"]
RESTART = ["model.conditioner.prototype_layer.restart_every=50"]
P32 = ["model.conditioner.prototype_layer.num_prototypes=32"]
STD = ["model.conditioner.standardise=true"]
CONDLR3 = ["train.lr_multipliers={conditioner: 3.0}"]

VARIANTS: dict[str, list[str]] = {
    "baseline": SHORT,
    "oracle": SHORT,
    "oracle-aligned": SHORT + ALIGNED,
    "aligned": SHORT + ALIGNED,
    "oracle-aligned-2k": LONG + ALIGNED,
    "aligned-decor": SHORT + ALIGNED + DECOR,
    "aligned-restart": SHORT + ALIGNED + RESTART,
    "aligned-2k": LONG + ALIGNED,
    "aligned-rf7": SHORT + ALIGNED + RF7,
    "aligned-rf7-decor": SHORT + ALIGNED + RF7 + DECOR,
    "aligned-rf7-decor-2k": LONG + ALIGNED + RF7 + DECOR,
    "aligned-rf7-decor-p32-2k": LONG + ALIGNED + RF7 + DECOR + P32,
    "aligned-rf7-decor-restart": SHORT + ALIGNED + RF7 + DECOR + RESTART,
    "aligned-rf7-decor-project": SHORT + ALIGNED + RF7 + DECOR + ["model.conditioner.prototype_layer.project_every=100"],
    "aligned-rf7-decor-tlate": SHORT
    + ALIGNED
    + RF7
    + DECOR
    + ["model.diffusion.t_sampling=logit-normal", "model.diffusion.t_mean=0.5"],
    "aligned-rf7-decor-condlr3": SHORT + ALIGNED + RF7 + DECOR + CONDLR3,
    "aligned-rf7-decor-std": SHORT + ALIGNED + RF7 + DECOR + STD,
    "aligned-rf7-decor-std-2k": LONG + ALIGNED + RF7 + DECOR + STD,
    "aligned-rf7-decor-p32-std-2k": LONG + ALIGNED + RF7 + DECOR + P32 + STD,
    #: The recipe shipped as patronus-shapes (seeds 0, 1, 2 in docs/local-concepts.md).
    "final": LONG + ALIGNED + RF7 + DECOR + P32 + STD,
    "rf7-decor": SHORT + RF7 + DECOR,
    "restart": SHORT + RESTART,
    "decor": SHORT + DECOR,
    "tlate": SHORT + ["model.diffusion.t_sampling=logit-normal", "model.diffusion.t_mean=1.0"],
    "condlr3": SHORT + CONDLR3,
    "p32": SHORT + P32,
    "rf11": SHORT + RF11,
}


class OracleJudge(Conditioner):
    """``oracle-judge``: s = the attribute classifier's calls on the clean image (frozen).

    An upper bound for any learned conditioner: can this denoiser, in this budget, use a perfect
    description of the attributes?
    """

    @dataclass
    class Config:
        classifier: str = ""
        embed_dim: int = 128

    def __init__(self, config: Config, *, in_channels: int, image_size: int) -> None:
        from protodiff.metrics.attribute_classifier import AttributeClassifier

        super().__init__()
        self.config = config
        judge = AttributeClassifier.load(config.classifier)
        for p in judge.parameters():
            p.requires_grad_(False)
        self.judge = [judge]  # not a submodule: not saved, not trained
        self.dim = len(judge.attribute_names)
        self.embed_dim = config.embed_dim
        self.embedding = torch.nn.Sequential(
            torch.nn.Linear(self.dim, config.embed_dim), torch.nn.SiLU(), torch.nn.Linear(config.embed_dim, config.embed_dim)
        )

    def encode(self, x0: torch.Tensor) -> Condition:
        with torch.no_grad():
            self.judge[0].to(x0.device).eval()
            vector = (torch.sigmoid(self.judge[0](x0)) > 0.5).float()
        return Condition(vector, self.names)

    def embed(self, vector: torch.Tensor) -> torch.Tensor:
        return self.embedding(vector)


@contextmanager
def oracle_registered() -> Iterator[None]:
    """``oracle-judge`` in the conditioner registry inside the block (as the plugin ``PLUGIN``), gone after."""
    from protodiff import registries
    from protodiff._registry.registry import registering_as

    with registering_as(PLUGIN):
        registries().conditioner.add("oracle-judge", OracleJudge)
    try:
        yield
    finally:
        registries().remove_plugin(PLUGIN)


def judge_for(config, out: Path, steps: int = 400) -> Path:
    """An attribute classifier for the run's dataset configuration (trained once, cached under ``out``)."""
    from protodiff.config import to_dict
    from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig

    data = to_dict(config.data)
    key = hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    path = out / "judges" / key
    if not (path / "classifier.json").is_file():
        train = config.data.build().open("train")
        judge = AttributeClassifier.for_dataset(train, ClassifierConfig(steps=steps, seed=0))
        judge.fit(train)
        judge.save(path)
        (path / "data.json").write_text(json.dumps(data, indent=1))
    return path


def evaluate(run_dir: Path, seed: int, args) -> dict[str, Any]:
    import protodiff

    model, config = protodiff.load_model(run_dir)
    judge = judge_for(config, args.out, args.judge_steps)
    results = protodiff.evaluate(
        model,
        metrics=["dimension-auroc", "reconstruction-agreement"],
        split="test",
        seed=seed,
        experiment=config,
        device="cpu",
        options={
            "dimension-auroc": {"num_latents": 100000},
            "reconstruction-agreement": {
                "num_images": args.recon_images,
                "sampler": {"name": "ddim", "steps": args.recon_steps},
                "classifier": str(judge),
            },
        },
    )
    dims = results["dimension-auroc"]
    auroc = np.array([[np.nan if v is None else v for v in row] for row in dims["auroc"]], dtype=float)  # (A, K)
    names = dims["attributes"]
    best = {n: float(np.nanmax(auroc[i])) for i, n in enumerate(names)}
    worst = {n: float(np.nanmin(auroc[i])) for i, n in enumerate(names)}
    per_attr = {n: int((auroc[i] >= 0.9).sum()) for i, n in enumerate(names)}
    owners: dict[str, list[int]] = {}
    for j in range(auroc.shape[1]):
        i = int(np.nanargmax(np.abs(auroc[:, j] - 0.5)))
        strong = abs(auroc[i, j] - 0.5) >= 0.25
        owners.setdefault(names[i] if strong else "none", []).append(j)
    recon = results["reconstruction-agreement"]

    protos = None
    layer = getattr(model.conditioner, "prototype_layer", None)
    if layer is not None and hasattr(layer, "prototypes"):
        p = torch.nn.functional.normalize(layer.prototypes.detach().float(), dim=1)
        k = len(p)
        protos = float(((p @ p.T).sum() - k) / (k * (k - 1)))
    from protodiff.encoding import encode_split

    s = encode_split(model, config.data.build().open("test")).vectors
    corr = torch.corrcoef(s.T.float()).nan_to_num().abs()
    k = corr.shape[0]
    return {
        "best_auroc": best,
        "min_auroc": worst,
        "protos_per_attr_ge_0.9": per_attr,
        "owners": owners,
        "agreement": {n: v["agreement"] for n, v in recon["per_attribute"].items()},
        "chance": {n: v["chance"] for n, v in recon["per_attribute"].items()},
        "prototype_cosine": protos,
        "activation_abs_corr": float((corr.sum() - k) / (k * (k - 1))),
        "judge_accuracy": {n: v["judge_accuracy"] for n, v in recon["per_attribute"].items()},
    }


def run(variant: str, seed: int, args) -> dict[str, Any]:
    from protodiff import load_experiment, train

    overrides = VARIANTS[variant] + [f"seed={seed}"] + list(args.set)
    if variant.startswith("oracle"):
        data_only = load_experiment(args.base, overrides)
        judge = judge_for(data_only, args.out, args.judge_steps)
        overrides = overrides + [f"model.conditioner={{name: oracle-judge, classifier: {judge}}}"]
    config = load_experiment(args.base, overrides)
    run_dir = args.out / f"{variant}-s{seed}{args.tag}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    start = time.perf_counter()
    train(config, run_dir, device="cpu")
    wall = time.perf_counter() - start
    result = {
        "variant": variant + args.tag,
        "seed": seed,
        "overrides": overrides,
        "train_seconds": round(wall, 1),
        "threads": torch.get_num_threads(),
        "code": code_version(),
        **evaluate(run_dir, seed, args),
    }
    with open(args.out / "results.jsonl", "a") as handle:
        handle.write(json.dumps(result) + "\n")
    print(summary_line(result), flush=True)
    return result


ORDER = ["red_square", "blue_disc", "green_triangle", "yellow_cross", "checker_patch", "dark_bg", "warm_cast", "gradient"]
SHORTNAMES = ["red", "blue", "grn", "yel", "chk", "dark", "warm", "grad"]


GLOBALS = {"dark_bg", "warm_cast", "gradient"}


def oriented(r: dict, name: str) -> float:
    """Best AUROC of one prototype: for a global attribute either value is a concept (dark or light
    background), so a prototype firing on its absence counts too; a mark must be fired on."""
    best = r["best_auroc"].get(name, float("nan"))
    if name in GLOBALS and "min_auroc" in r:
        return max(best, 1 - r["min_auroc"][name])
    return best


def summary_line(r: dict) -> str:
    a = " ".join(f"{oriented(r, n):.2f}" for n in ORDER)
    g = " ".join(f"{r['agreement'].get(n, float('nan')):.2f}" for n in ORDER)
    return (
        f"{r['variant']:<28} s{r['seed']} {r['train_seconds']:>6.0f}s | AUROC {a} | agree {g} | "
        f"cos {r['prototype_cosine'] if r['prototype_cosine'] is None else round(r['prototype_cosine'], 2)} "
        f"corr {r['activation_abs_corr']:.2f}"
    )


def table(out: Path) -> None:
    print(f"{'variant':<28} seed  time | AUROC {' '.join(f'{s:>4}' for s in SHORTNAMES)} | agree ...")
    for line in (out / "results.jsonl").read_text().splitlines():
        print(summary_line(json.loads(line)))


def arguments() -> argparse.ArgumentParser:
    """The command line (the docs' quoted commands are checked against it)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="*", help=f"Any of: {', '.join(VARIANTS)}.")
    parser.add_argument("--seed", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--base", default=BASE)
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every variant")
    parser.add_argument("--tag", default="", help="suffix for run names")
    parser.add_argument("--recon-images", type=int, default=250)
    parser.add_argument("--recon-steps", type=int, default=25)
    parser.add_argument("--judge-steps", type=int, default=400, help="Training steps of a judge (cached per data configuration).")
    parser.add_argument("--out", type=Path, default=OUT, help="Runs, judges and results.jsonl go here.")
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--eval-only", metavar="RUN", help="evaluate an existing run directory and print it")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = arguments().parse_args(argv)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        arguments().error(f"unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}")
    if args.table:
        table(args.out)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    with oracle_registered():
        if args.eval_only:
            result = {
                "variant": Path(args.eval_only).name + args.tag,
                "seed": args.seed[0],
                "train_seconds": 0.0,
                **evaluate(Path(args.eval_only), args.seed[0], args),
            }
            print(summary_line(result))
            print(json.dumps(result["owners"]))
            return
        for variant in args.variants:
            for seed in args.seed:
                run(variant, seed, args)


if __name__ == "__main__":
    main()
