"""Which of the paper's PGR orderings hold in a finished run (the bench, README "Measured").

Run on demand after `snakemake all ... bench.yaml`:
    python tests/benchmarks/orderings.py [--results results] [--dataset slurp_intent]

Each claim compares two rows seed by seed (same seed, same weak models, same ceiling):
the mean PGR difference over seeds with its 95% t-interval. "holds" when the interval
lies above 0, "reversed" when below, "not resolved" when it spans 0. A run of seeds where not
every method ran is fine: each claim compares the seeds both of its rows have, and what is
missing is listed under the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ws2s.curves import PROTOCOLS as CURVE_PROTOCOLS
from ws2s.curves import picked_scores
from ws2s.io import read_json, read_parquet
from ws2s.label_models import LABEL_MODELS
from ws2s.objectives import MIN_GAP, multi_weak_pgr
from ws2s.tables import METHOD_LABELS, METRICS, PROTOCOLS, paired_difference, run_key, t_interval


def against(baseline: str, name: str) -> list:
    """Bayesian Multi-Weak above `baseline`, without and with aux on both sides."""
    return [(f"Bayesian > {name} ({{e}})", ("bayesian", "{e}", "noaux"), (baseline, "{e}", "noaux")),
            (f"Bayesian +aux > {name} +aux ({{e}})", ("bayesian", "{e}", "aux"), (baseline, "{e}", "aux"))]


AUX_CLAIM = ("aux helps Bayesian ({e})", ("bayesian", "{e}", "aux"), ("bayesian", "{e}", "noaux"))
CLASSIFICATION_CLAIMS = against("naive", "Naive") + [
    claim for method in LABEL_MODELS for claim in against(method, METHOD_LABELS[method].split(" (")[0])] + [AUX_CLAIM]
ENSEMBLE_CLAIM = ("Bayesian ws5 > ws3 (+aux)", ("bayesian", "ws5", "aux"), ("bayesian", "ws3", "aux"))
GENERATION_CLAIMS = against("naive", "Naive") + against("jointdecoding", "Joint Decoding") + [AUX_CLAIM]
# no gold-free rule on this track: two teachers leave no triplet to estimate their errors
GENERATION_PROTOCOLS = ("paper", "nogold", "fewgold")


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


def ranges(seeds) -> str:
    """5, 6, 7, 9 -> "5-7, 9"."""
    seeds, spans = sorted(seeds), []
    for seed in seeds:
        if spans and seed == spans[-1][1] + 1:
            spans[-1][1] = seed
        else:
            spans.append([seed, seed])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def picked_on_curves(metric: str, protocol: str) -> bool:
    """Classification's few-gold and gold-free picks are made on its curves (`ws2s.curves`);
    generation's few-gold pick by each run itself (`slu_f1_fewgold` in its metrics.json)."""
    return metric == "accuracy" and protocol in ("fewgold", "goldfree")


def per_seed_pgr(root: Path, metric: str, protocol: str = "paper") -> tuple[dict, dict, list[str]]:
    """{(row label, aux): {seed: PGR}} of every run under `root`, the layout found there, and what
    is missing: a row without a run on some seeds (a run of seeds where not every method ran),
    a run without its seed's ceiling or weak models. Each run's PGR is the one its table gives
    (`ws2s.tables.w2s_results`), computed run by run, so a missing run leaves out only itself."""
    weak, strong = runs_under(root)
    # plain method names only: ablation variants (bayesian-full, jointdecoding-m5, ...) are no rows
    strong = [p for p in strong if "-" not in Path(p).parts[-5]]
    layout = layout_of(strong, metric)
    weak_key = METRICS[metric][0]
    key = weak_key + PROTOCOLS[protocol]
    weak_score = {(m["model"], m["seed"]): m[weak_key] for m in map(read_json, weak)}
    runs = {run_key(run): run for run in map(read_json, strong)}
    if picked_on_curves(metric, protocol):
        scores = picked_scores(read_parquet(root.parent.parent / "curves" / f"{root.name}.parquet"), protocol)
        runs = {k: {**run, key: scores.get(k, float("nan"))} for k, run in runs.items()}
    seeds = sorted({seed for *_, seed in runs})
    keyed: dict = {}
    missing = [f"seed {seed}: no ceiling run, so none of its runs has a PGR" for seed in seeds
               if ("ceiling", "gold", "noaux", seed) not in runs]
    for (method, source, aux, seed), run in sorted(runs.items()):
        ceiling = runs.get(("ceiling", "gold", "noaux", seed))
        if method == "ceiling" or ceiling is None:
            continue
        absent = [m for m in run["members"] if (m, seed) not in weak_score]
        if absent:
            missing.append(f"{METHOD_LABELS[method].format(source)}{' +aux' if aux == 'aux' else ''}, seed {seed}: "
                           f"no weak run of {', '.join(absent)}, so no PGR")
            continue
        keyed.setdefault((METHOD_LABELS[method].format(source), aux), {})[seed] = multi_weak_pgr(
            run[key], [weak_score[(m, seed)] for m in run["members"]], ceiling[key], MIN_GAP)
    rows = {(method, source, aux) for method, source, aux, _ in runs if method != "ceiling"}
    for method, source, aux in sorted(rows):
        lacking = [seed for seed in seeds if (method, source, aux, seed) not in runs]
        if lacking:
            missing.append(f"{METHOD_LABELS[method].format(source)}{' +aux' if aux == 'aux' else ''}: no run on "
                           f"seed{'s' if len(lacking) > 1 else ''} {ranges(lacking)}")
    return keyed, layout, missing


def report(title: str, root: Path, metric: str, claims: list, extra: list, protocol: str) -> list[str]:
    heading = [f"**{title}, {protocol} protocol**", ""]
    curves = root.parent.parent / "curves" / f"{root.name}.parquet"
    if picked_on_curves(metric, protocol) and not curves.exists():
        return heading + [f"No curves at {curves}: its picks come from the `curves_{root.name}` step's output."]
    keyed, layout, missing = per_seed_pgr(root, metric, protocol)
    lines = heading + [
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
    unresolved = []
    for name, (ma, sa, xa), (mb, sb, xb) in resolved:
        a, b = keyed.get((METHOD_LABELS[ma].format(sa), xa), {}), keyed.get((METHOD_LABELS[mb].format(sb), xb), {})
        stat = paired_difference(a, b)
        if stat is None:  # a row this run did not have (left out without a word), or too few seeds with both
            if a and b:
                unresolved.append(name)
            continue
        mean, half, n = stat
        lines.append(f"| {name} | {n} | {mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}] | {verdict(mean, half)} |")
    if not keyed:
        lines.append(f"\nNo finished strong run under {root}.")
        return lines
    if missing:
        lines += ["", "Missing (the claims compare the seeds both of their rows have):", *(f"- {m}" for m in missing)]
    if unresolved:
        lines += ["", "Not compared (fewer than two seeds with both rows, or a PGR undefined): "
                  + "; ".join(unresolved)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--dataset", default="slurp_intent")
    args = parser.parse_args()
    results = Path(args.results)
    lines = []
    for protocol in CURVE_PROTOCOLS:
        lines += report(f"Classification ({args.dataset})", results / "classification" / args.dataset, "accuracy",
                        CLASSIFICATION_CLAIMS, [ENSEMBLE_CLAIM], protocol) + [""]
    for protocol in GENERATION_PROTOCOLS:
        lines += report("Generation (SLURP)", results / "generation", "slu_f1", GENERATION_CLAIMS, [], protocol) + [""]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
