"""Multi-turn environments: the contract (base.py) and the built-in hidden-number game (guess.py)."""
