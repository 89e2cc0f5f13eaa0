"""``survmom plot history``: the training loss and the validation C-index per epoch of a checkpoint.

The numbers are the checkpoint's own records (:attr:`~survmom.training.checkpoint.Checkpoint.history`, one
per completed epoch): ``loss`` is the mean training loss over the epoch's batches (Cox: the negative log
partial likelihood per event of each batch pooled with the memory bank; Weibull: the negative log-likelihood
per row), ``val_cindex`` the target network's Harrell C on the validation rows after the epoch. The untrained
network (the linear start, when one was fitted) is validated too: it is drawn as epoch 0 (C only; it has no
training loss). The best epoch is the one whose target weights predict uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from survmom.errors import CheckpointError, ConfigError
from survmom.training.checkpoint import read_checkpoint

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LOSS_NAMES = {"cox": "Cox negative log partial likelihood per event (batch + bank)",
              "weibull": "Weibull negative log-likelihood per row"}


def history_data(checkpoint: Path, member: int = 1) -> dict[str, Any]:
    """The numbers behind the figure (what ``--json`` prints): the per-epoch records and the best epoch.

    ``epochs``: the records as saved (``epoch``, ``loss``, ``val_cindex`` (None without validation),
    ``best`` (a new best at that epoch), ``seconds``, ``samples_per_s``, ``rate`` (the EMA rate));
    ``start_val_cindex``: the linear start's validation C (epoch 0; None when there was none or it was not
    scored); ``best_epoch``/``best_val_cindex``: the weights predict uses (None: the last epoch's, unvalidated).
    A cross-fitted ensemble: those of member ``member`` (from 1; the trained ones and the one in training), with
    ``member`` and ``members`` (K); a single model: ``member`` and ``members`` are 1.
    """
    saved = ensemble = read_checkpoint(checkpoint)
    if ensemble.ensemble_size > 1:
        trained = len(ensemble.state["ensemble"]["members"])
        available = ensemble.members[:trained] + ([ensemble] if ensemble.state["ensemble"]["current"] == trained
                                                  else [])
        if not 1 <= member <= len(available):
            raise ConfigError(f"{checkpoint}: --member must be from 1 to {len(available)} (the ensemble's members "
                              f"with a history, of {ensemble.ensemble_size}), got {member}")
        saved = available[member - 1]
    elif member != 1:
        raise ConfigError(f"{checkpoint}: --member {member} asks for an ensemble member; this is a single model")
    if not saved.history:
        raise CheckpointError(f"{checkpoint}: no completed epoch yet, so no training history to plot; "
                              f"continue it with: survmom resume {checkpoint}")
    records = [dict(record) for record in saved.history]
    validated = saved.best_metric is not None
    return {
        "checkpoint": str(checkpoint),
        "data": saved.data.get("path"),
        "loss": saved.config.loss,
        "loss_name": LOSS_NAMES[saved.config.loss],
        "train_rows": saved.data.get("train_rows"),
        "val_rows": saved.data.get("val_rows"),
        "epochs": records,
        "start_val_cindex": saved.progress.get("start_val_cindex"),
        "best_epoch": saved.best_epoch if validated else None,
        "best_val_cindex": saved.best_metric,
        "stopped_early": bool(saved.progress["stopped_early"]),
        "patience": saved.config.patience,
        "bank_capacity": int(saved.bank["capacity"]),
        "member": member,
        "members": ensemble.ensemble_size,
    }


def draw_history(data: dict[str, Any]) -> Figure:
    """The figure of :func:`history_data`'s numbers: loss per epoch on top, validation C below (when there is
    any), the best epoch marked on both by a dotted line."""
    from matplotlib.ticker import MaxNLocator

    from survmom.app.figures import PALETTE, new_figure

    epochs = [record["epoch"] for record in data["epochs"]]
    losses = [record["loss"] for record in data["epochs"]]
    scored = [(record["epoch"], record["val_cindex"]) for record in data["epochs"] if record["val_cindex"] is not None]
    start = data["start_val_cindex"]
    validated = bool(scored) or start is not None
    best = data["best_epoch"]
    with new_figure(7.0, 6.0 if validated else 3.8) as figure:
        axes = figure.subplots(2 if validated else 1, 1, sharex=True, squeeze=False)[:, 0]
        ax = axes[0]
        ax.plot(epochs, losses, marker="o", markersize=3.5, color=PALETTE[0], label="training loss")
        ax.set_ylabel("training loss")
        note = _bank_note(data)
        title = f"training loss: {data['loss_name']}, mean over the epoch's batches"
        ax.set_title(title + (f"\n{note}" if note else ""), fontsize=10)
        if validated:
            ax_c = axes[1]
            if scored:
                ax_c.plot(*zip(*scored), marker="o", markersize=3.5, color=PALETTE[2], label="validation C-index")
            if start is not None:
                ax_c.plot([0], [start], linestyle="none", marker="D", markersize=7, color=PALETTE[4],
                          label=f"linear start (epoch 0): {start:.4f}")
            if best is not None:
                ax_c.plot([best], [data["best_val_cindex"]], linestyle="none", marker="*", markersize=15,
                          color=PALETTE[1], label=f"best: epoch {best}, C {data['best_val_cindex']:.4f}", zorder=3)
            ax_c.set_ylabel("validation Harrell's C")
            ax_c.set_title(f"target network on the {data['val_rows']:,} validation rows", fontsize=10)
            ax_c.legend(loc="best")  # where it hides the fewest points (a falling C ends lower right)
        if best is not None:
            for each in axes:
                each.axvline(best, color=PALETTE[1], linestyle=":", linewidth=1.2)
        axes[-1].set_xlabel("epoch" + (" (0: the linear start, before training)" if start is not None else ""))
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[-1].set_xlim(-0.5 if start is not None else 0.5, max(epochs) + 0.5)
        figure.suptitle(_title(data))
    return figure


def _bank_note(data: dict[str, Any]) -> str | None:
    """For Cox with a memory bank: the pooled loss grows with its risk sets while the bank fills."""
    capacity, rows = data["bank_capacity"], data["train_rows"]
    if data["loss"] != "cox" or not capacity or not rows:
        return None
    full = -(-capacity // rows)  # the epoch in which the bank's last free slot is filled
    until = "in epoch 1" if full == 1 else f"until epoch {full}"
    return f"(it grows with the risk sets while the memory bank of {capacity:,} rows fills, {until})"


def _title(data: dict[str, Any]) -> str:
    name = Path(data["checkpoint"]).name
    trained_on = Path(data["data"]).name if data["data"] else "its training data"
    rows = f"{data['train_rows']:,} training rows" if data["train_rows"] is not None else "training rows"
    of = f"member {data['member']} of {data['members']} (cross-fitted) of " if data.get("members", 1) > 1 else ""
    line = f"Training history of {of}{name} ({trained_on}: {rows}, {len(data['epochs'])} epochs"
    if data["stopped_early"]:
        line += ", stopped early"
    if data["best_epoch"] is None:
        return line + ")\nno validation C-index: predictions use the last epoch's weights"
    return line + ")"
