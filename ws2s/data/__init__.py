"""Data: the classification data sets (`ws2s.data.classification`), SLURP (`ws2s.data.slurp`),
their sources, and the two splits stages. Kept empty: a package's __init__ runs with every
module of it, so anything here would be part of every step's code version."""
