"""``python -m dicomhub`` runs the same CLI as the ``dicomhub`` console script."""

from dicomhub.cli.main import main

main()
