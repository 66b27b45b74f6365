# ws2s: Bayesian WeakS-to-Strong (Cui et al., ICLR 2025) as a Snakemake pipeline.
# Paper-scale experiments are config.yaml; the embedded CPU default overlays
# workflow/configs/small.yaml (see README).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/weak.smk"
include: "workflow/rules/strong.smk"
include: "workflow/rules/generation.smk"
include: "workflow/rules/cdpo.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        all_targets(),
