"""A meta-RL run's history: the inner loop's losses and the returns before and after adaptation."""

from __future__ import annotations

from reptile_gui.plots.series import Series, SeriesPlot

__all__ = ["RLLossPlot", "ReturnsPlot"]


class RLLossPlot(SeriesPlot):
    """The policy, critic and agent losses of the inner loop per meta-iteration (means over the meta-batch's
    tasks and inner gradient steps; ``agent = policy + c_v * critic - c_e * entropy``).

    The policy loss (a surrogate: PPO's clipped objective, A2C's ``-A log pi``, TD3's ``-Q``) and with it the
    agent loss are signed, so the axis is linear by default; on a log axis their values <= 0 leave gaps,
    which the note beside the check box points out.
    """

    plot_name = "rl_losses"
    title = "RL losses"
    empty_text = "No iterations yet: start training to see the agent's losses"
    series = (Series("policy_loss", "policy loss", "policy_loss"),
              Series("critic_loss", "critic loss", "critic_loss"),
              Series("agent_loss", "agent loss", "agent_loss"))
    y_label = "inner-loop loss (per transition)"
    log_y_tip = ("Show the losses on a logarithmic axis. The policy and agent losses are signed: "
                 "their values ≤ 0 leave gaps there")
    default_smoothing = 0.9


class ReturnsPlot(SeriesPlot):
    """The mean episode return of the meta-parameters θ on the meta-batch's tasks (before adaptation) and of
    the adapted parameters φ after the K inner updates, per meta-iteration. Returns are usually negative,
    so there is no log axis."""

    plot_name = "returns"
    title = "Returns"
    empty_text = "No iterations yet: start training to see the returns"
    legend_offset = (-10, -10)  # bottom right: returns rise over training, the lower right stays free
    series = (Series("return_before", "return before adaptation (θ)", "pre_adaptation"),
              Series("return_after", "return after adaptation (φ)", "post_adaptation"))
    y_label = "mean return (per episode)"
    log_y_allowed = False
    default_smoothing = 0.9
