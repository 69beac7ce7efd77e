"""Cost of the models: the paper's FLOPs formulas, counted FLOPs, timings, Figure 4."""
