"""Studies: what varies around a recipe (schema), and the Ray Tune + Optuna runner that executes them."""
