"""`lods image-to-3d` (registered on the main app by cli.py)."""


def register(app) -> None:
    pass
