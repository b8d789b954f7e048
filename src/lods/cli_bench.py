"""`lods bench ...` commands (registered on the bench sub-app by cli.py)."""


def register(bench_app) -> None:
    pass
