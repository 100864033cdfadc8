"""Development only (not in the image): `make run`'s launcher and its private redis-server."""
