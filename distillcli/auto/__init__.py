"""`distill auto`: search across pruning, distillation, quantization and weight sharing for the
cheapest model within an accuracy drop (config.py: the options; space.py: the candidates;
score.py: what is minimised; trial.py: one candidate through the engine; search.py: the search;
study.py: the Optuna study's trials as candidates; final.py: the chosen model on the test split;
report.py: the table, chart and summary)."""
