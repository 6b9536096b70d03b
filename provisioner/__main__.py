"""`python -m provisioner`: the same CLI as the `provisioner` console script."""

from provisioner.cli.app import main

main()
