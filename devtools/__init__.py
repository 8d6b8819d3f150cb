"""Development tooling: `make run`, `make test`, embedded services, serving ASGI in a thread.

Nothing in the site (project/, the feature apps) imports this package; it imports them."""
