"""``python -m deploytune.cli``: the ``deploytune`` command."""

from deploytune.cli import main

main()
