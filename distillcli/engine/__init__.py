"""The engine: pipeline.py runs a recipe, the one path every command that trains, compresses or
measures a model takes; the other modules are its parts. The package itself imports nothing, so
a torch-free part (rundir.py, say) loads without the rest."""
