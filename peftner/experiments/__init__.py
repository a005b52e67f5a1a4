"""Experiments on top of training runs: search spaces become Optuna studies (:mod:`.search`), runs form
a matrix of methods × seeds × sizes (:mod:`.matrix`) shared by workers through one storage
(:mod:`.storage`), and results become typed rows, tables and plots (:mod:`.results`, :mod:`.tables`,
:mod:`.plots`, :mod:`.outputs`). The commands on top: ``peftner compare`` (:mod:`.compare`) and
``peftner tune`` (:mod:`.tune`). Dependencies run one way, from the commands down to storage."""
