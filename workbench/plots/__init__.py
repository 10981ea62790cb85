"""Plots of a campaign for the people running it (matplotlib, imported lazily).

    ax = campaign.plot()              # best so far against trial number (and random search)
    campaign.plot.convergence(random=True)  # random search's band, simulated if not free
    ax = campaign.plot_predictions()  # what the model expected against what happened
    ax = plot_calibration(campaign)   # expected against observed interval coverage
    campaign.plot_pareto(); campaign.plot_hypervolume()   # several objectives
    campaign.plot_slices(); campaign.plot_lengthscales()  # what the model believes
    plot_map(campaign, "temperature", "time")  # 2-D posterior mean and sd through the best
    plot_pairs(campaign)              # the mean over every pair of the 3 most relevant
    campaign.plot_ternary("alloy", ["Cu", "Ni", "Pd"])     # compositions
    campaign.plot.importance()        # Sobol indices of the model per parameter
    campaign.plot.explain(12)         # the acquisition recorded around trial 12's proposal

Each function draws on ``ax`` when given (or on a new figure) and returns the
Axes (a Figure where it draws several panels: slices, 2-D maps, Pareto pairs of three or
more objectives). Axis labels carry the parameters' and objectives' units.
matplotlib is imported only when a plot is drawn, so the workbench itself
does not depend on it.
"""

from workbench.plots.calibration import (CALIBRATION_LEVELS, campaign_predictions,
                                         coverage_curve, plot_calibration, plot_predictions)
from workbench.plots.convergence import (RANDOM_QUANTILES, RANDOM_RUNS, RandomBand,
                                         best_so_far_quantiles, plot_convergence, pool_values,
                                         random_best_quantiles, random_search_band,
                                         random_search_runs, running_best)
from workbench.plots.explain import plot_explain
from workbench.plots.importance import plot_importance
from workbench.plots.model import (CampaignModel, PosteriorMap, campaign_model, map_parameters,
                                   plot_map, plot_pairs, plot_slices, posterior_map,
                                   relevant_parameters)
from workbench.plots.objectives import plot_hypervolume, plot_pareto
from workbench.plots.relevance import ard_relevance, last_hyperparameters, plot_lengthscales
from workbench.plots.ternary import plot_ternary, ternary_xy

__all__ = ["coverage_curve", "plot_calibration", "plot_convergence", "plot_predictions",
           "running_best", "campaign_predictions", "CALIBRATION_LEVELS",
           "RandomBand", "best_so_far_quantiles", "pool_values", "random_best_quantiles",
           "random_search_band", "random_search_runs", "RANDOM_QUANTILES", "RANDOM_RUNS",
           "CampaignModel", "ard_relevance", "campaign_model", "plot_hypervolume",
           "plot_lengthscales", "plot_pareto", "plot_slices", "plot_ternary", "ternary_xy",
           "PosteriorMap", "plot_map", "plot_pairs", "posterior_map", "relevant_parameters",
           "map_parameters", "last_hyperparameters", "plot_importance", "plot_explain"]
