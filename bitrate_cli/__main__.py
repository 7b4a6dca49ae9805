"""``python -m bitrate_cli``: the same as the ``bitrate`` command."""

from bitrate_cli import main

main()
