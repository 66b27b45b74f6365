"""ws2s: Bayesian WeakS-to-Strong (Cui et al., ICLR 2025) as a Snakemake pipeline."""
