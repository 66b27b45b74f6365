"""One thin module per pipeline step, named as its Snakemake rule and its `ws2s` command.

A stage reads its inputs, wires the shared pieces (`ws2s.train` models, `ws2s.objectives`,
`ws2s.frames`, `ws2s.io`) and writes its outputs; no stage imports another, so a rule's code
version (`ws2s.codeversion`) covers only what that rule runs. Kept empty: a package's
__init__ runs with every module of it."""
