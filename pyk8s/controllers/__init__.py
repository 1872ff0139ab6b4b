"""pyk8s.controllers: the built-in controllers (one module each) and the process that runs them (manager.py)."""
