"""The campaign: ``Campaign`` and the parts it delegates to.

``facade`` holds ``Campaign``, the public surface; ``journal`` the trial log
(events, replay, compaction, the lock); ``design`` initial designs and candidate
pools; ``proposing`` the calls into the engine; ``loop`` the one closed loop over
the executor protocol; ``telemetry`` tracking, versions, compute and diagnostics;
``observations`` and ``results`` what a tell may report and what the trials add up to.
"""

from workbench.campaign.facade import Campaign
from workbench.campaign.plotting import PlotAccessor

__all__ = ["Campaign", "PlotAccessor"]
