"""The engine graded by the chain over a past block range (docs/backtest.md).

truth.py    the Pool's getUserAccountData of every borrower at every block, and the crossings it implies
replay.py   the watcher's Tracker and engine replayed block by block: the predictions as they were made
moves.py    the oracle's jump at each block, bucketed
grading.py  truth + predictions -> the figures, per scenario and overall (pure)
run.py      one backtest: the range planned against the node's state history, the stages run in order
replay_many.py  the engine replayed once for many parameter sets (each block read once)
sweep.py, frontier.py   the grid of settings graded on one history; its precision / flagged-ahead frontier
plots.py    the report's figures (PNG, matplotlib's Agg canvas): lead time, frontier, ETA calibration, candidates
datasets.py, output.py, report.py   the frames as lake datasets, the report as Markdown and JSON
"""
