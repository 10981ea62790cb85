"""``python -m workbench`` is the ``workbench`` command (an ask first goes to the warm
worker, see ``workbench.worker``)."""

from workbench.launcher import main

main()
