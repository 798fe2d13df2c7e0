"""From a sweep dir of rlreason runs to the results page's figures and tables (experiments/sweep_report.py).

runs.py finds and reads the run dirs, stats.py turns them into numbers, plots.py draws the figures and
report.py writes report.md / report.json.
"""
