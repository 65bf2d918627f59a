"""``python -m eegbench``: the CLI, as launchers (``accelerate launch -m``, ``torchrun -m``) start it."""

from eegbench.cli import main

main()
