"""One module per `jaxvac` command; see jaxvac/cli.py."""
