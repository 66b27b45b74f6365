"""Which of the paper's PGR orderings hold in a finished run (the bench, README "Measured").

Run on demand after `snakemake all ... bench.yaml`:
    python tests/benchmarks/orderings.py [--results results] [--dataset slurp_intent]

Each claim compares two rows seed by seed (same seed, same weak models, same ceiling):
the mean PGR difference over seeds with its 95% t-interval. "holds" when the interval
lies above 0, "reversed" when below, "not resolved" when it spans 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ws2s.label_models import LABEL_MODELS
from ws2s.tables import METHOD_LABELS, paired_difference, t_interval, w2s_results


def against(baseline: str, name: str) -> list:
    """Bayesian Multi-Weak above `baseline`, without and with aux on both sides."""
    return [(f"Bayesian > {name} ({{e}})", ("bayesian", "{e}", "noaux"), (baseline, "{e}", "noaux")),
            (f"Bayesian +aux > {name} +aux ({{e}})", ("bayesian", "{e}", "aux"), (baseline, "{e}", "aux"))]


AUX_CLAIM = ("aux helps Bayesian ({e})", ("bayesian", "{e}", "aux"), ("bayesian", "{e}", "noaux"))
CLASSIFICATION_CLAIMS = against("naive", "Naive") + [
    claim for method in LABEL_MODELS for claim in against(method, METHOD_LABELS[method].split(" (")[0])] + [AUX_CLAIM]
ENSEMBLE_CLAIM = ("Bayesian ws5 > ws3 (+aux)", ("bayesian", "ws5", "aux"), ("bayesian", "ws3", "aux"))
GENERATION_CLAIMS = against("naive", "Naive") + against("jointdecoding", "Joint Decoding") + [AUX_CLAIM]


def verdict(mean: float, half: float) -> str:
    if mean == 0 and half == 0:
        return "identical on every seed"
    return "holds" if mean - half > 0 else "reversed" if mean + half < 0 else "not resolved"


def runs_under(root: Path) -> tuple[list[str], list[str]]:
    return [str(p) for p in root.glob("weak/*/seed*/metrics.json")], [str(p) for p in root.glob("strong/*/*/*/seed*/metrics.json")]


def layout_of(strong: list[str], metric: str) -> dict:
    keys = [Path(p).parts[-5:-1] for p in strong]
    return {
        "weak_models": sorted({source for method, source, _, _ in keys if method == "single"}),
        "ensembles": sorted({source for method, source, _, _ in keys if method not in ("single", "ceiling")}),
        "methods": sorted({method for method, _, _, _ in keys if method != "ceiling"}),
        "aux_variants": ["noaux", "aux"],
        "aux_methods": sorted({method for method, _, aux, _ in keys if aux == "aux"}),
        "metric": metric,
    }


def per_seed_pgr(root: Path, metric: str, protocol: str = "paper") -> tuple[dict, dict]:
    """{(row label, aux): {seed: PGR}} of every run under `root`, and the layout found there."""
    weak, strong = runs_under(root)
    # plain method names only: ablation variants (bayesian-full, jointdecoding-m5, ...) are no rows
    strong = [p for p in strong if "-" not in Path(p).parts[-5]]
    layout = layout_of(strong, metric)
    keyed: dict = {}
    for row in w2s_results(weak, strong, layout, protocol=protocol).itertuples(index=False):
        keyed.setdefault((row.method, row.aux), {})[row.seed] = row.pgr
    return keyed, layout


def report(title: str, root: Path, metric: str, claims: list, extra: list, protocol: str) -> list[str]:
    keyed, layout = per_seed_pgr(root, metric, protocol)
    lines = [f"**{title}, {protocol} protocol**", "",
             "| claim | seeds | PGR (difference) in points, mean [95% CI] | verdict |", "| --- | --- | --- | --- |"]
    for model in layout["weak_models"]:  # Weak-to-Strong itself: a single weak model's PGR above 0
        for aux in layout["aux_variants"]:
            values = keyed.get((METHOD_LABELS["single"].format(model), aux), {})
            interval = t_interval([100 * v for v in values.values()])
            if interval is not None:
                mean, half = interval
                lines.append(f"| W2S from {model}{' +aux' if aux == 'aux' else ''}: PGR > 0 | {len(values)} | "
                             f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}] | {verdict(mean, half)} |")
    resolved = [(name.format(e=e), (ma, sa.format(e=e), xa), (mb, sb.format(e=e), xb))
                for e in layout["ensembles"] for name, (ma, sa, xa), (mb, sb, xb) in claims] + extra
    for name, (ma, sa, xa), (mb, sb, xb) in resolved:
        stat = paired_difference(keyed.get((METHOD_LABELS[ma].format(sa), xa), {}),
                                 keyed.get((METHOD_LABELS[mb].format(sb), xb), {}))
        if stat is None:  # a row this run did not have, or an undefined PGR
            continue
        mean, half, n = stat
        lines.append(f"| {name} | {n} | {mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}] | {verdict(mean, half)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--dataset", default="slurp_intent")
    args = parser.parse_args()
    results = Path(args.results)
    lines = []
    for protocol in ("paper", "nogold"):
        lines += report(f"Classification ({args.dataset})", results / "classification" / args.dataset, "accuracy",
                        CLASSIFICATION_CLAIMS, [ENSEMBLE_CLAIM], protocol) + [""]
        lines += report("Generation (SLURP)", results / "generation", "slu_f1", GENERATION_CLAIMS, [], protocol) + [""]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
