"""The value-estimation analysis of the VinePPO paper (experiments/value_analysis.py is the command).

states.py     trajectories -> states at step boundaries -> two alternative next steps per state
estimates.py  continuations -> ground truth and MC-K values; the PPO critic's values
metrics.py    MAE and ranking accuracy (pure functions)
report.py     the markdown table and the figure
turns.py      multi-turn runs (env.cls): the critic and MC-K against MC truth at turn boundaries, per turn
"""
