"""The three plots of a deliberation run: AUROC by layer, the valley, the truncation curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_plots(out: str | Path, probe: dict[str, Any], trunc: dict[str, Any], *,
                commitment: float | None = None) -> list[Path]:
    """The three plots; ``commitment`` (the agreement that counts as committed) is drawn as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in probe["by_layer"].items():
        for side, style in (("all", "-"), ("harmful", "--")):
            ys = [r["auroc"].get(side) for r in rows]
            if any(y is not None for y in ys):
                ax.plot([r["layer"] for r in rows], [float("nan") if y is None else y for y in ys], style,
                        marker=".", label=f"{name} ({side})")
    base = probe["text_baseline"]["all"].get("auroc")
    if base is not None:
        ax.axhline(base, color="grey", linestyle=":", label="prompt TF-IDF baseline")
    ax.axhline(0.5, color="black", linewidth=0.5)
    ax.set(xlabel="layer", ylabel="out-of-fold AUROC", title="Refuse/comply probe before thinking", ylim=(0.3, 1.0))
    if ax.get_legend_handles_labels()[0]:  # a probe with too few prompts of a class draws no curve to name
        ax.legend(fontsize=7)
    paths.append(_save(fig, out / "auroc_by_layer.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for side, ys in probe["valley"].items():
        if any(y is not None for y in ys):
            xs = [100 * i / max(len(ys) - 1, 1) for i in range(len(ys))]
            ax.plot(xs, [float("nan") if y is None else y for y in ys], label=side)
    ax.set(xlabel="position in the trace (% of its tokens)", ylabel="Fisher ratio (refuse vs comply, non-answers out)",
           title="Separability along the trace")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out / "valley.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (side, entry) in enumerate(trunc["sides"].items()):
        # the last point (100%) replays the whole trace: its distance from 1 is the noise floor
        pts = [(100 * c["fraction"], c["agreement"]) for c in entry["curve"] if c["agreement"] is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", color=f"C{i}", label=f"{side}: vs own answer (n={entry['curve'][0]['n']})")
        full = [(100 * c["fraction"], c["agreement_vs_full_replay"]) for c in entry["curve"]
                if c.get("agreement_vs_full_replay") is not None]
        if full and side == "all":
            ax.plot(*zip(*full), marker=".", linestyle="--", color=f"C{i}", label=f"{side}: vs full-trace replay")
    if commitment is not None:
        ax.axhline(commitment, color="grey", linestyle=":", label=f"committed ({commitment:g})")
    ax.set(xlabel="trace kept (%; 100 = the whole trace replayed, the floor)",
           ylabel="majority decision (refuse vs comply) agrees", ylim=(0, 1.05),
           title="Truncation: when is the decision made?")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out / "truncation.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
